//! What an environment is made of (zips, function settings, user variables) and the variables Lambda sets for
//! every process in it.

use std::path::PathBuf;
use std::time::Duration;

/// `AWS_LAMBDA_MAX_CONCURRENCY` when none is given: a small number, so tests see queueing beyond it.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// Lambda Managed Instances allow an init of up to 15 minutes.
pub const MANAGED_INSTANCES_INIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// `AWS_LAMBDA_INITIALIZATION_TYPE` on Lambda Managed Instances.
pub const MANAGED_INSTANCES_INIT_TYPE: &str = "lambda-managed-instances";

/// The settings of one local execution environment. [`Options::new`] gives Lambda's defaults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Layer zips, extracted in order into the `/opt`-like directory; a bare executable instead of a zip becomes
    /// `/opt/extensions/<its file name>` (an extension built by a test, unpackaged).
    pub layers: Vec<PathBuf>,
    /// The function zip, extracted into the `/var/task`-like directory; a bare executable instead becomes its
    /// `bootstrap`.
    pub function: PathBuf,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// `_HANDLER` (`bootstrap` for provided.al2023).
    pub handler: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB (reported, not enforced).
    pub memory_mb: u32,
    /// The function timeout: each invoke's `deadlineMs`.
    pub timeout: Duration,
    /// `AWS_REGION`.
    pub region: String,
    /// The account id in ARNs.
    pub account_id: String,
    /// The function's environment variables, and the execution role's credentials
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`). They override Lambda's defaults except the runtime API
    /// address, `LAMBDA_TASK_ROOT` and `_HANDLER`.
    pub env: Vec<(String, String)>,
    /// `AWS_SESSION_TOKEN` (`AWS_CONTAINER_AUTHORIZATION_TOKEN` under SnapStart); a random one when `None`.
    pub session_token: Option<String>,
    /// Freeze every process (SIGSTOP) between invokes, as Lambda does.
    pub freeze: bool,
    /// Lambda's init limit.
    pub init_timeout: Duration,
    /// How long SHUTDOWN gives the processes when an external extension is registered.
    pub shutdown_timeout: Duration,
    /// Echo every log line to stderr.
    pub echo_logs: bool,
    /// Lambda Managed Instances: `AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances` and
    /// `AWS_LAMBDA_MAX_CONCURRENCY` are set, a registration for `INVOKE` is refused with a 400 as Lambda refuses it
    /// there, nothing is ever frozen, extensions get no INVOKE, and up to `max_concurrency` invocations run at once
    /// (the runtime may hold several `invocation/next` calls open). Set with [`Options::managed_instances`].
    pub managed_instances: bool,
    /// `AWS_LAMBDA_MAX_CONCURRENCY` under Managed Instances: the most invocations one environment runs at once.
    pub max_concurrency: u32,
}

impl Options {
    /// Lambda's defaults for `function` with `layers`: 128 MB, a 3 s timeout, freezing on, 10 s init, 2 s shutdown.
    pub fn new(function: impl Into<PathBuf>, layers: Vec<PathBuf>) -> Self {
        Self {
            layers,
            function: function.into(),
            function_name: "function".to_owned(),
            handler: "bootstrap".to_owned(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
            env: Vec::new(),
            session_token: None,
            freeze: true,
            init_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(2),
            echo_logs: false,
            managed_instances: false,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }

    /// The same function on Lambda Managed Instances (see [`Options::managed_instances`]'s field): no freezing,
    /// concurrent invocations up to `max_concurrency`, and Lambda's 15-minute init limit there.
    pub fn managed_instances(mut self, max_concurrency: u32) -> Self {
        self.managed_instances = true;
        self.max_concurrency = max_concurrency.max(1);
        self.freeze = false;
        self.init_timeout = MANAGED_INSTANCES_INIT_TIMEOUT;
        self
    }

    /// Adds (or replaces) a variable.
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.function_name
        )
    }
}

/// Where things are, for the environment variables.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The `/opt`-like directory.
    pub opt: PathBuf,
    /// The `/var/task`-like directory.
    pub task: PathBuf,
    /// The `/tmp`-like directory.
    pub tmp: PathBuf,
}

/// Every variable Lambda sets for an OS-only runtime (provided.al2023), with the paths moved into the sandbox,
/// then the user's. `PATH` keeps the host's too, since the host is the "OS" here. The X-Ray daemon variables are
/// left out on purpose: they name a link-local address that nothing here may send to.
///
/// One is lambda-env's own: `LAMBDA_ENV_OPT`, where this environment's `/opt` is, for fixtures that name a path in
/// `/opt` as a function in Lambda would (`AWS_LAMBDA_EXEC_WRAPPER=/opt/...`, a `bootstrap` that runs
/// `/opt/extensions/...`). Lambda has `/opt` itself and sets no such variable.
pub fn lambda_vars(
    options: &Options,
    paths: &Paths,
    runtime_api: &str,
    session_token: &str,
    log_stream: &str,
) -> Vec<(String, String)> {
    let (opt, task) = (paths.opt.display(), paths.task.display());
    let host_path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned());
    let mut vars: Vec<(String, String)> = [
        ("_HANDLER", options.handler.clone()),
        ("AWS_REGION", options.region.clone()),
        ("AWS_DEFAULT_REGION", options.region.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", options.function_name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            options.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", options.function_name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_SESSION_TOKEN", session_token.to_owned()),
        ("LAMBDA_TASK_ROOT", task.to_string()),
        ("LAMBDA_RUNTIME_DIR", task.to_string()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("PATH", format!("{opt}/bin:{host_path}")),
        (
            "LD_LIBRARY_PATH",
            format!("{task}:{task}/lib:{opt}/lib:/lib64:/usr/lib64"),
        ),
        ("TMPDIR", paths.tmp.display().to_string()),
        ("LAMBDA_ENV_OPT", opt.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if options.managed_instances {
        vars.retain(|(k, _)| k != "AWS_LAMBDA_INITIALIZATION_TYPE");
        vars.push((
            "AWS_LAMBDA_INITIALIZATION_TYPE".to_owned(),
            MANAGED_INSTANCES_INIT_TYPE.to_owned(),
        ));
        vars.push((
            "AWS_LAMBDA_MAX_CONCURRENCY".to_owned(),
            options.max_concurrency.to_string(),
        ));
    }
    const FIXED: [&str; 3] = ["AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "_HANDLER"];
    for (k, v) in &options.env {
        if FIXED.contains(&k.as_str()) {
            continue;
        }
        vars.retain(|(existing, _)| existing != k);
        vars.push((k.clone(), v.clone()));
    }
    // Under SnapStart Lambda sets no AWS_SESSION_TOKEN: the processes get AWS_CONTAINER_AUTHORIZATION_TOKEN instead,
    // and that is the token the secrets extensions accept. `AWS_LAMBDA_INITIALIZATION_TYPE=snap-start` asks for it.
    let snap_start = vars
        .iter()
        .any(|(k, v)| k == "AWS_LAMBDA_INITIALIZATION_TYPE" && v == "snap-start");
    if snap_start {
        vars.retain(|(k, _)| k != "AWS_SESSION_TOKEN");
        if !vars
            .iter()
            .any(|(k, _)| k == "AWS_CONTAINER_AUTHORIZATION_TOKEN")
        {
            vars.push((
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned(),
                session_token.to_owned(),
            ));
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_variables_override_defaults_but_not_the_runtime_api() {
        let options = Options::new("f.zip", vec![])
            .var("AWS_REGION", "eu-west-1")
            .var("AWS_LAMBDA_RUNTIME_API", "evil:1")
            .var("DB_SECRET_ARN", "db");
        let paths = Paths {
            opt: "/o".into(),
            task: "/t".into(),
            tmp: "/x".into(),
        };
        let vars = lambda_vars(&options, &paths, "127.0.0.1:9001", "tok", "s");
        let get = |k: &str| {
            vars.iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("AWS_REGION"), ["eu-west-1"]);
        assert_eq!(get("AWS_LAMBDA_RUNTIME_API"), ["127.0.0.1:9001"]);
        assert_eq!(get("DB_SECRET_ARN"), ["db"]);
        assert_eq!(get("LAMBDA_TASK_ROOT"), ["/t"]);
        assert_eq!(get("LAMBDA_ENV_OPT"), ["/o"]);
        assert_eq!(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), ["128"]);
        assert_eq!(get("AWS_SESSION_TOKEN"), ["tok"]);
        assert!(get("AWS_CONTAINER_AUTHORIZATION_TOKEN").is_empty());
    }

    #[test]
    fn managed_instances_set_the_init_type_and_the_concurrency_and_never_freeze() {
        let options = Options::new("f.zip", vec![]).managed_instances(8);
        assert!(!options.freeze);
        let paths = Paths {
            opt: "/o".into(),
            task: "/t".into(),
            tmp: "/x".into(),
        };
        let vars = lambda_vars(&options, &paths, "127.0.0.1:9001", "tok", "s");
        let get = |k: &str| {
            vars.iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            get("AWS_LAMBDA_INITIALIZATION_TYPE"),
            ["lambda-managed-instances"]
        );
        assert_eq!(get("AWS_LAMBDA_MAX_CONCURRENCY"), ["8"]);
        assert_eq!(get("AWS_SESSION_TOKEN"), ["tok"]);
    }

    #[test]
    fn snap_start_swaps_the_session_token_for_the_container_token() {
        let options =
            Options::new("f.zip", vec![]).var("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start");
        let paths = Paths {
            opt: "/o".into(),
            task: "/t".into(),
            tmp: "/x".into(),
        };
        let vars = lambda_vars(&options, &paths, "127.0.0.1:9001", "tok", "s");
        assert!(!vars.iter().any(|(k, _)| k == "AWS_SESSION_TOKEN"));
        assert!(vars
            .iter()
            .any(|(k, v)| k == "AWS_CONTAINER_AUTHORIZATION_TOKEN" && v == "tok"));
    }
}
