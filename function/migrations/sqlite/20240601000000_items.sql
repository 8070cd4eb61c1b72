-- The items of the /items API (SQLite, for local runs). AUTOINCREMENT keeps ids of deleted items from coming back,
-- as BIGSERIAL does on PostgreSQL.
CREATE TABLE IF NOT EXISTS items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description TEXT CHECK (description IS NULL OR length(description) <= 2000)
);
