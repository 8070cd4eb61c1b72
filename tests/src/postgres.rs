//! A throwaway PostgreSQL cluster from the machine's server binaries, on a free port, for the `/items` tests.
//!
//! What it sets up, and why:
//! - `initdb` as the `postgres` user when the tests run as root (the server refuses to run as root), in a temporary
//!   folder chowned to that user;
//! - `scram-sha-256` for every login and **`hostssl` only** in `pg_hba.conf`, so a client that does not speak TLS,
//!   or does not know the password, is refused exactly as RDS would;
//! - a test CA and a leaf certificate for `127.0.0.1` / `localhost`, made with `rcgen`. rustls rejects a lone
//!   self-signed certificate as `CaUsedAsEndEntity`, so `verify-full` needs the two.
//!
//! Starting takes about 3 s on the test machine, so a test binary starts one, [`PgCluster::shared`], and gives each
//! test its own role and database ([`PgCluster::create_app_database`], with the `/items` schema applied by its owner
//! as an operator would, or [`PgCluster::create_bare_database`] without it). [`PgCluster::start_impostor`] starts a
//! cluster that presents a self-signed certificate for `CN=attacker.invalid`, for the TLS verification tests. A cluster that is dropped stops at once; the
//! shared one lives in a static, which is never dropped, so a small watchdog process stops it and removes its folder
//! as soon as the test process has exited.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::OnceCell;

/// Where Debian's PostgreSQL 15 server binaries live.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The address the cluster listens on (and the certificate names).
pub const HOST: &str = "127.0.0.1";

/// The common name of the impostor's self-signed certificate.
pub const IMPOSTOR_CN: &str = "attacker.invalid";

/// A running cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct PgCluster {
    /// The cluster's folder, removed (after the server is stopped) when the cluster is dropped.
    _folder: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
    superuser_password: String,
    as_postgres: bool,
    /// False for the impostor, whose certificate nothing can verify.
    verifiable: bool,
}

/// A role and a database of its own, for one test.
#[derive(Debug, Clone)]
pub struct AppDatabase {
    /// The database name.
    pub dbname: String,
    /// The role that owns it.
    pub username: String,
    /// The role's password now.
    pub password: String,
    /// The cluster's port.
    pub port: u16,
}

impl AppDatabase {
    /// A `postgres://` URL with the password in it (no `sslmode`: the function's default applies).
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{HOST}:{}/{}",
            self.username, self.password, self.port, self.dbname
        )
    }

    /// The `/items` migrations, applied as this database's owner (the operator's step in function/README.md), through
    /// the function's own code: `items-function migrate` runs the same.
    pub async fn migrate(&self, ca: &Path, verify: bool) {
        let mode = if verify { "verify-full" } else { "require" };
        let env: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", self.url()),
            ("DATABASE_SSLMODE", mode.to_owned()),
            ("DATABASE_SSL_ROOT_CERT", ca.to_string_lossy().into_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let config = items_function::config::Config::from_env(&env).expect("migration config");
        items_function::migrate(&config, None)
            .await
            .unwrap_or_else(|e| panic!("migrating {}: {e}", self.dbname));
    }

    /// The RDS secret JSON Secrets Manager would hold for this database.
    pub fn secret_json(&self) -> String {
        serde_json::json!({
            "username": self.username,
            "password": self.password,
            "host": HOST,
            "port": self.port,
            "dbname": self.dbname,
            "engine": "postgres",
        })
        .to_string()
    }
}

static SHARED: OnceCell<PgCluster> = OnceCell::const_new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "{tag}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgCluster {
    /// The cluster shared by every test of this binary, started on first use.
    pub async fn shared() -> &'static PgCluster {
        SHARED
            .get_or_init(|| async {
                tokio::task::spawn_blocking(|| PgCluster::start(true))
                    .await
                    .expect("start PostgreSQL")
            })
            .await
    }

    /// Starts a new cluster (blocking, about 3 s). With `watchdog`, a helper process stops it once this process
    /// exits, for clusters that live in a static and are never dropped.
    pub fn start(watchdog: bool) -> PgCluster {
        Self::start_with(watchdog, true)
    }

    /// A cluster that presents a self-signed certificate for `CN=attacker.invalid`: what `sslmode=require` connects
    /// to without complaint, and `verify-full` must refuse. Stopped on drop.
    pub async fn start_impostor() -> PgCluster {
        tokio::task::spawn_blocking(|| PgCluster::start_with(false, false))
            .await
            .expect("start the impostor PostgreSQL")
    }

    fn start_with(watchdog: bool, verifiable: bool) -> PgCluster {
        let bin = Path::new(PG_BIN);
        assert!(
            bin.join("initdb").exists(),
            "{PG_BIN}/initdb is missing; install the Debian package postgresql-15"
        );
        let as_postgres = running_as_root();
        let folder = tempfile::Builder::new()
            .prefix("secretcache-pg-")
            .tempdir()
            .expect("cluster folder");
        let dir = folder.path().to_path_buf();
        let superuser_password = format!("su-{}", crate::random_token());
        std::fs::write(dir.join("pwfile"), &superuser_password).expect("pwfile");
        if verifiable {
            make_certificates(&dir);
        } else {
            make_impostor_certificate(&dir);
        }
        let mut cluster = PgCluster {
            _folder: folder,
            dir,
            port: 0,
            superuser_password,
            as_postgres,
            verifiable,
        };
        if as_postgres {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&cluster.dir),
                "chown the cluster folder to postgres",
            );
        }
        let data = cluster.dir.join("data");
        run(
            cluster
                .pg_command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
                .args(["--no-locale", "--no-sync", "--no-instructions"])
                .arg(format!("--pwfile={}", cluster.dir.join("pwfile").display())),
            "initdb",
        );
        // hostssl only: plain TCP and the Unix socket are both refused.
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n",
        )
        .expect("pg_hba.conf");

        let mut last_log = String::new();
        for _attempt in 0..3 {
            cluster.port = crate::free_port();
            let conf = format!(
                "port = {port}\nlisten_addresses = '{HOST}'\nunix_socket_directories = '{dir}'\n\
                 ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
                 password_encryption = 'scram-sha-256'\nmax_connections = 60\nfsync = off\n\
                 synchronous_commit = off\nfull_page_writes = off\nlog_min_messages = warning\n",
                port = cluster.port,
                dir = cluster.dir.display()
            );
            std::fs::write(data.join("postgresql.auto.conf"), conf).expect("postgresql.auto.conf");
            if as_postgres {
                run(
                    Command::new("chown")
                        .args(["-R", "postgres:postgres"])
                        .arg(&cluster.dir),
                    "chown the cluster folder to postgres",
                );
            }
            let status = cluster
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.join("server.log"))
                .args(["-w", "-t", "30", "start"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("pg_ctl start");
            if status.success() {
                if watchdog {
                    cluster.spawn_watchdog();
                }
                return cluster;
            }
            // Most likely the port was taken between free_port() and the bind: try another.
            last_log = std::fs::read_to_string(cluster.dir.join("server.log")).unwrap_or_default();
        }
        panic!("PostgreSQL did not start:\n{last_log}");
    }

    fn pg_command(&self, program: &str) -> Command {
        let path = Path::new(PG_BIN).join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn stop_command(&self) -> String {
        let pg_ctl = format!(
            "{PG_BIN}/pg_ctl -D '{}' stop -m immediate",
            self.dir.join("data").display()
        );
        if self.as_postgres {
            format!("runuser -u postgres -- {pg_ctl}")
        } else {
            pg_ctl
        }
    }

    fn spawn_watchdog(&self) {
        crate::after_this_process_exits(&format!(
            "{} >/dev/null 2>&1; rm -rf '{}'",
            self.stop_command(),
            self.dir.display()
        ));
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test CA's certificate (PEM), for `verify-ca` / `verify-full`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Superuser connect options (TLS required, certificate verified against the test CA; the impostor's cannot be).
    pub fn superuser_options(&self, dbname: &str) -> PgConnectOptions {
        let options = PgConnectOptions::new_without_pgpass()
            .host(HOST)
            .port(self.port)
            .username("postgres")
            .password(&self.superuser_password)
            .database(dbname)
            .disable_statement_logging();
        if self.verifiable {
            options
                .ssl_mode(PgSslMode::VerifyFull)
                .ssl_root_cert(self.ca_cert())
        } else {
            options.ssl_mode(PgSslMode::Require)
        }
    }

    /// Runs `sql` (one or more statements) as the superuser on the `postgres` database.
    pub async fn admin(&self, sql: &str) {
        let mut conn = sqlx::PgConnection::connect_with(&self.superuser_options("postgres"))
            .await
            .unwrap_or_else(|e| panic!("superuser connection: {e}\n{}", self.server_log()));
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("admin SQL failed: {e}"));
        let _ = conn.close().await;
    }

    /// A new role with a random password, and a database it owns, with the `/items` table migrated by that owner.
    pub async fn create_app_database(&self, tag: &str) -> AppDatabase {
        let app = self.create_bare_database(tag).await;
        app.migrate(&self.ca_cert(), self.verifiable).await;
        app
    }

    /// [`PgCluster::create_app_database`] with the same role name and password as `like` (an impostor posing as
    /// that database).
    pub async fn create_database_like(&self, like: &AppDatabase) -> AppDatabase {
        let app = AppDatabase {
            port: self.port,
            ..like.clone()
        };
        self.create_role_and_database(&app).await;
        app.migrate(&self.ca_cert(), self.verifiable).await;
        app
    }

    /// A new role with a random password, and an empty database it owns (no `/items` table).
    pub async fn create_bare_database(&self, tag: &str) -> AppDatabase {
        let name = unique(tag).to_ascii_lowercase();
        let app = AppDatabase {
            dbname: format!("db_{name}"),
            username: format!("app_{name}"),
            password: new_password(),
            port: self.port,
        };
        self.create_role_and_database(&app).await;
        app
    }

    /// A login role with a random password and nothing but CONNECT on `db` (PostgreSQL 15 gives ordinary roles no
    /// CREATE in `public`): what a least-privilege application role starts from. Same database, this role.
    pub async fn create_login_role(&self, db: &AppDatabase, tag: &str) -> AppDatabase {
        let role = AppDatabase {
            username: format!("{tag}_{}", unique("r").to_ascii_lowercase()),
            password: new_password(),
            ..db.clone()
        };
        self.admin(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '{}'; GRANT CONNECT ON DATABASE {} TO {}",
            role.username, role.password, role.dbname, role.username
        ))
        .await;
        role
    }

    /// Runs `sql` as the superuser in `dbname`.
    pub async fn admin_in(&self, dbname: &str, sql: &str) {
        let mut conn = sqlx::PgConnection::connect_with(&self.superuser_options(dbname))
            .await
            .unwrap_or_else(|e| panic!("superuser connection: {e}\n{}", self.server_log()));
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("admin SQL failed: {e}"));
        let _ = conn.close().await;
    }

    async fn create_role_and_database(&self, app: &AppDatabase) {
        self.admin(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '{}'",
            app.username, app.password
        ))
        .await;
        self.admin(&format!(
            "CREATE DATABASE {} OWNER {}",
            app.dbname, app.username
        ))
        .await;
    }

    /// `ALTER ROLE ... PASSWORD`: existing sessions carry on, new logins need the new password.
    pub async fn set_password(&self, username: &str, password: &str) {
        self.admin(&format!("ALTER ROLE {username} PASSWORD '{password}'"))
            .await;
    }

    /// How many sessions `username` has open now.
    pub async fn sessions_of(&self, username: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect_with(&self.superuser_options("postgres"))
            .await
            .expect("superuser connection");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
            .bind(username)
            .fetch_one(&mut conn)
            .await
            .expect("count sessions");
        let _ = conn.close().await;
        n
    }

    /// How many sessions of `username` are waiting for a lock now: the requests held up by a lock a test holds, so
    /// the test can count how many run at once without measuring time.
    pub async fn sessions_waiting_for_a_lock(&self, username: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect_with(&self.superuser_options("postgres"))
            .await
            .expect("superuser connection");
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'",
        )
        .bind(username)
        .fetch_one(&mut conn)
        .await
        .expect("count waiting sessions");
        let _ = conn.close().await;
        n
    }
}

/// A fresh password made of characters that need no quoting in SQL or URLs.
pub fn new_password() -> String {
    format!(
        "pw-{}-{}",
        crate::random_token(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.stop_command()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `folder` is removed after this, with the server stopped.
    }
}

/// A self-signed certificate for `CN=attacker.invalid` (and its key) as the server's, and as `ca.crt` so that
/// [`PgCluster::ca_cert`] still names a file.
fn make_impostor_certificate(dir: &Path) {
    let key = rcgen::KeyPair::generate().expect("the impostor's key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, IMPOSTOR_CN);
    let cert = params.self_signed(&key).expect("self-sign");
    write_server_files(dir, &cert.pem(), &key.serialize_pem());
    std::fs::write(dir.join("ca.crt"), cert.pem()).expect("ca.crt");
}

/// A CA, and a server certificate it signed for `127.0.0.1` and `localhost` (ECDSA P-256, by rcgen: no openssl
/// process, and quick to make).
fn make_certificates(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "secretcache test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");

    let key = KeyPair::generate().expect("server key");
    // "127.0.0.1" becomes an IP address SAN, "localhost" a DNS one.
    let mut leaf = CertificateParams::new(vec![HOST.to_owned(), "localhost".to_owned()])
        .expect("server params");
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("sign the server certificate");
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).expect("ca.crt");
    write_server_files(dir, &cert.pem(), &key.serialize_pem());
}

/// `server.crt`, and `server.key` readable by its owner only: PostgreSQL refuses a key that others can read.
fn write_server_files(dir: &Path, cert: &str, key: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(dir.join("server.crt"), cert).expect("server.crt");
    let key_path = dir.join("server.key");
    std::fs::write(&key_path, key).expect("server.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod server.key");
}
