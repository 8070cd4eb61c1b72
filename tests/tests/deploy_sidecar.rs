//! The sidecar examples in `deploy/` (issue 20), checked offline: no Docker, no cluster, no AWS.
//!
//! - `ecs-sidecar.yaml` passes cfn-lint, and its task shares one token volume between the application and
//!   secretcache, written first by a one-shot container, with a health check on `/ping`;
//! - `k8s-sidecar.yaml` validates against the Kubernetes 1.29 API schema (strict: unknown fields fail) and runs
//!   secretcache as a native sidecar beside the application with the same shared token and startup, readiness and
//!   liveness probes on `/ping`;
//! - `Dockerfile` copies the binaries `make package` writes, and installs the probe command the manifests call.

use secretcache_tests::cfn::{Evaluator, Resolved, Template};
use secretcache_tests::workspace_root;
use serde::Deserialize;
use yaml_serde::Value;

const ECS: &str = "deploy/ecs-sidecar.yaml";
const K8S: &str = "deploy/k8s-sidecar.yaml";
const DOCKERFILE: &str = "deploy/Dockerfile";
/// The oldest Kubernetes with native sidecars on by default (SidecarContainers beta).
const K8S_VERSION: &str = "1.29.0";
/// What every health check of the examples must run after the binary: `secretcache ping` asks the token-free /ping
/// on loopback, inside the container.
const PING: &str = "ping";

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Where the Dockerfile installs secretcache, which is also the health check (`COPY --from=bin ... <dest>`).
fn dockerfile_probe_binary() -> String {
    read(DOCKERFILE)
        .lines()
        .find(|l| l.starts_with("COPY --from=bin"))
        .and_then(|l| l.split_whitespace().last())
        .expect("the Dockerfile copies secretcache in")
        .to_string()
}

/// `file://<path>` -> `<path>`.
fn token_path(aws_token: &str) -> &str {
    aws_token
        .strip_prefix("file://")
        .unwrap_or_else(|| panic!("AWS_TOKEN {aws_token:?} is not a file:// reference"))
}

// ---------------------------------------------------------------------------------------------------------------
// ECS

/// One container definition of the ECS task, with its leaves evaluated on demand.
struct EcsContainer<'e> {
    body: Value,
    eval: &'e Evaluator<'e>,
}

impl EcsContainer<'_> {
    fn name(&self) -> String {
        self.text(&["Name"]).expect("container Name")
    }

    fn text(&self, path: &[&str]) -> Option<String> {
        let mut v = &self.body;
        for key in path {
            v = v.get(*key)?;
        }
        match self.eval.eval(v).expect("evaluate") {
            Resolved::Str(s) => Some(s),
            other => panic!("{path:?} is {other:?}, not a string"),
        }
    }

    fn list(&self, key: &str) -> Vec<Value> {
        self.body
            .get(key)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default()
    }

    fn env(&self, name: &str) -> Option<String> {
        self.list("Environment")
            .iter()
            .find(|e| e.get("Name").and_then(Value::as_str) == Some(name))
            .and_then(
                |e| match self.eval.eval(e.get("Value")?).expect("env value") {
                    Resolved::Str(s) => Some(s),
                    _ => None,
                },
            )
    }

    /// (container path, read-only) of the mount of `volume`.
    fn mount(&self, volume: &str) -> Option<(String, bool)> {
        self.list("MountPoints")
            .iter()
            .find(|m| m.get("SourceVolume").and_then(Value::as_str) == Some(volume))
            .map(|m| {
                (
                    m.get("ContainerPath")
                        .and_then(Value::as_str)
                        .expect("ContainerPath")
                        .to_string(),
                    m.get("ReadOnly").and_then(Value::as_bool).unwrap_or(false),
                )
            })
    }

    fn depends_on(&self, container: &str) -> Option<String> {
        self.list("DependsOn")
            .iter()
            .find(|d| d.get("ContainerName").and_then(Value::as_str) == Some(container))
            .and_then(|d| d.get("Condition").and_then(Value::as_str).map(String::from))
    }

    /// A list of strings (`EntryPoint`, `Command`).
    fn words(&self, key: &str) -> Vec<String> {
        self.list(key)
            .iter()
            .filter_map(|w| w.as_str().map(String::from))
            .collect()
    }
}

#[test]
fn ecs_sidecar_template_passes_cfn_lint() {
    if let Err(e) = secretcache_tests::cfn::cfn_lint(&workspace_root().join(ECS)) {
        panic!("{e}");
    }
}

#[test]
fn ecs_sidecar_task_shares_the_token_volume_between_app_and_secretcache() {
    let template = Template::load(ECS).expect("template");
    let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-db-AbCdEf";
    let eval = template
        .evaluator(&[
            ("AppImage", "example/app:1"),
            ("SecretcacheImage", "example/secretcache:1"),
            ("SecretArn", secret),
        ])
        .expect("parameters");

    let tasks = template.resources_of_type("AWS::ECS::TaskDefinition");
    assert_eq!(tasks.len(), 1, "one task definition");
    let task = &tasks[0].1;
    // Containers share 127.0.0.1 only in awsvpc mode (always on Fargate).
    assert_eq!(
        eval.property(task, &["NetworkMode"]).expect("NetworkMode"),
        Some(Resolved::Str("awsvpc".into()))
    );

    let containers: Vec<EcsContainer> = task
        .get("Properties")
        .and_then(|p| p.get("ContainerDefinitions"))
        .and_then(Value::as_sequence)
        .expect("ContainerDefinitions")
        .iter()
        .map(|c| EcsContainer {
            body: c.clone(),
            eval: &eval,
        })
        .collect();
    let by_image = |image: &str| {
        containers
            .iter()
            .find(|c| c.text(&["Image"]).as_deref() == Some(image))
            .unwrap_or_else(|| panic!("no container runs {image}"))
    };
    let sidecar = by_image("example/secretcache:1");
    let app = by_image("example/app:1");
    let init: Vec<&EcsContainer> = containers
        .iter()
        .filter(|c| c.body.get("Essential").and_then(Value::as_bool) == Some(false))
        .collect();
    assert_eq!(init.len(), 1, "one non-essential (one-shot) container");
    let init = init[0];
    let (sidecar_name, app_name, init_name) = (sidecar.name(), app.name(), init.name());

    // The shared volume: a task volume, mounted read-only by both, writable by the one-shot writer only.
    let volumes: Vec<String> = task
        .get("Properties")
        .and_then(|p| p.get("Volumes"))
        .and_then(Value::as_sequence)
        .expect("Volumes")
        .iter()
        .filter_map(|v| v.get("Name").and_then(Value::as_str).map(String::from))
        .collect();
    let aws_token = sidecar.env("AWS_TOKEN").expect("secretcache has AWS_TOKEN");
    let token_file = token_path(&aws_token);
    let volume = volumes
        .iter()
        .find(|v| {
            sidecar
                .mount(v)
                .is_some_and(|(path, _)| token_file.starts_with(&format!("{path}/")))
        })
        .unwrap_or_else(|| panic!("no volume of {volumes:?} holds {token_file} in {sidecar_name}"));
    let (sidecar_path, sidecar_ro) = sidecar.mount(volume).expect("sidecar mount");
    assert!(sidecar_ro, "{sidecar_name} mounts {volume} writable");
    assert_eq!(
        app.mount(volume),
        Some((sidecar_path.clone(), true)),
        "{app_name} must mount {volume} read-only at {sidecar_path}, where the token is"
    );
    assert_eq!(
        app.env("SECRETCACHE_TOKEN_FILE").as_deref(),
        Some(token_file),
        "{app_name} is told where the token is"
    );
    assert_eq!(
        init.mount(volume),
        Some((sidecar_path.clone(), false)),
        "{init_name} must mount {volume} writable at {sidecar_path}"
    );
    let script = [init.words("EntryPoint"), init.words("Command")]
        .concat()
        .join(" ");
    assert!(
        script.contains("/dev/urandom")
            && script.contains(&format!("mv {token_file}.new {token_file}")),
        "{init_name} must write a random token to {token_file} in one rename: {script}"
    );

    // Order: the token before both; secretcache healthy before the application.
    assert_eq!(sidecar.depends_on(&init_name).as_deref(), Some("SUCCESS"));
    assert_eq!(app.depends_on(&init_name).as_deref(), Some("SUCCESS"));
    assert_eq!(app.depends_on(&sidecar_name).as_deref(), Some("HEALTHY"));

    // The health check runs inside the image, with the binary the Dockerfile installs, on /ping.
    let check: Vec<String> = sidecar
        .body
        .get("HealthCheck")
        .and_then(|h| h.get("Command"))
        .and_then(Value::as_sequence)
        .expect("secretcache HealthCheck.Command")
        .iter()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    assert_eq!(check.first().map(String::as_str), Some("CMD"), "{check:?}");
    assert_eq!(check.get(1), Some(&dockerfile_probe_binary()), "{check:?}");
    assert_eq!(check.last().map(String::as_str), Some(PING), "{check:?}");

    // Logs to CloudWatch, all three.
    for c in [sidecar, app, init] {
        assert_eq!(
            c.text(&["LogConfiguration", "LogDriver"]).as_deref(),
            Some("awslogs"),
            "{}",
            c.name()
        );
    }

    // The task role may read the one secret.
    let role_id = match eval.property(task, &["TaskRoleArn"]).expect("TaskRoleArn") {
        Some(Resolved::Unevaluated(v)) => v
            .as_str()
            .expect("GetAtt X.Arn")
            .trim_end_matches(".Arn")
            .to_string(),
        other => panic!("TaskRoleArn is {other:?}"),
    };
    let role = template.resource(&role_id).expect("task role");
    let policies = role
        .get("Properties")
        .and_then(|p| p.get("Policies"))
        .and_then(Value::as_sequence)
        .expect("inline policies");
    let statements: Vec<&Value> = policies
        .iter()
        .filter_map(|p| p.get("PolicyDocument")?.get("Statement")?.as_sequence())
        .flatten()
        .collect();
    assert_eq!(statements.len(), 1, "the task role has one statement");
    assert_eq!(
        statements[0].get("Action").and_then(Value::as_str),
        Some("secretsmanager:GetSecretValue")
    );
    assert_eq!(
        eval.eval(statements[0].get("Resource").expect("Resource"))
            .expect("Resource"),
        Resolved::Str(secret.into())
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes

fn k8s_documents() -> Vec<Value> {
    yaml_serde::Deserializer::from_str(&read(K8S))
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn named<'v>(list: &'v [Value], name: &str) -> Option<&'v Value> {
    list.iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

fn seq(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default()
}

fn env(container: &Value, name: &str) -> Option<String> {
    named(&seq(container, "env"), name)
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(String::from)
}

/// (mountPath, readOnly) of `volume` in `container`.
fn k8s_mount(container: &Value, volume: &str) -> Option<(String, bool)> {
    named(&seq(container, "volumeMounts"), volume).map(|m| {
        (
            m.get("mountPath")
                .and_then(Value::as_str)
                .expect("mountPath")
                .to_string(),
            m.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
        )
    })
}

fn exec_probe(container: &Value, probe: &str) -> Vec<String> {
    container
        .get(probe)
        .and_then(|p| p.get("exec"))
        .and_then(|e| e.get("command"))
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("no exec {probe}"))
        .iter()
        .filter_map(|w| w.as_str().map(String::from))
        .collect()
}

#[test]
fn k8s_sidecar_manifest_matches_the_kubernetes_schema() {
    let bin = workspace_root().join(".venv/bin/kubernetes-validate");
    assert!(
        bin.exists(),
        "{} is missing; run `make venv` (make test does)",
        bin.display()
    );
    let out = std::process::Command::new(&bin)
        .args(["--strict", "-k", K8S_VERSION])
        .arg(workspace_root().join(K8S))
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{K8S} does not validate against Kubernetes {K8S_VERSION}:\n{text}"
    );
    // It must have checked both documents, not skipped an unknown kind.
    for resource in ["serviceaccount/app", "deployment/app"] {
        assert!(
            text.contains(&format!("passed for resource {resource}")),
            "{resource} not validated:\n{text}"
        );
    }
}

#[test]
fn k8s_sidecar_manifest_runs_secretcache_beside_the_app_with_a_shared_token() {
    let docs = k8s_documents();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d.get("kind").and_then(Value::as_str) == Some(k))
            .unwrap_or_else(|| panic!("no {k} in {K8S}"))
    };
    let account = kind("ServiceAccount");
    let deployment = kind("Deployment");
    let pod = deployment
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .expect("pod spec");

    // Credentials: the pods run as the ServiceAccount that carries the IRSA role annotation.
    let account_name = account
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    assert_eq!(
        pod.get("serviceAccountName").and_then(Value::as_str),
        account_name
    );
    let role = account
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("eks.amazonaws.com/role-arn"))
        .and_then(Value::as_str)
        .expect("IRSA annotation eks.amazonaws.com/role-arn");
    assert!(role.starts_with("arn:aws:iam::"), "{role}");

    let init = seq(pod, "initContainers");
    let containers = seq(pod, "containers");
    // The native sidecar: a restartable init container running the secretcache image.
    let sidecar_at = init
        .iter()
        .position(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"))
        .expect("an init container with restartPolicy: Always (native sidecar)");
    let sidecar = &init[sidecar_at];
    let image = sidecar
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        image.contains("secretcache"),
        "the native sidecar runs {image}"
    );
    assert_eq!(containers.len(), 1, "one application container");
    let app = &containers[0];

    // The token: an in-memory emptyDir, read-only in secretcache and the application, at the path AWS_TOKEN names.
    let aws_token = env(sidecar, "AWS_TOKEN").expect("secretcache has AWS_TOKEN");
    let token_file = token_path(&aws_token);
    let volumes = seq(pod, "volumes");
    let volume = volumes
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|v| {
            k8s_mount(sidecar, v).is_some_and(|(p, _)| token_file.starts_with(&format!("{p}/")))
        })
        .unwrap_or_else(|| panic!("no volume mounted in secretcache holds {token_file}"));
    let empty_dir = named(&volumes, volume)
        .and_then(|v| v.get("emptyDir"))
        .expect("an emptyDir volume");
    assert_eq!(
        empty_dir.get("medium").and_then(Value::as_str),
        Some("Memory"),
        "the token stays off disk"
    );
    let (path, sidecar_ro) = k8s_mount(sidecar, volume).expect("sidecar mount");
    assert!(sidecar_ro, "secretcache mounts {volume} writable");
    assert_eq!(
        k8s_mount(app, volume),
        Some((path.clone(), true)),
        "the application mounts {volume} read-only"
    );
    assert_eq!(
        env(app, "SECRETCACHE_TOKEN_FILE").as_deref(),
        Some(token_file)
    );

    // The writer: an ordinary init container before the sidecar, writing a random token there in one rename.
    let writer_at = init
        .iter()
        .position(|c| {
            c.get("restartPolicy").is_none() && k8s_mount(c, volume).is_some_and(|(_, ro)| !ro)
        })
        .expect("an init container that writes the token volume");
    assert!(
        writer_at < sidecar_at,
        "the token writer must run before secretcache starts"
    );
    let script: Vec<String> = seq(&init[writer_at], "command")
        .iter()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    let script = script.join(" ");
    assert!(
        script.contains("/dev/urandom")
            && script.contains(&format!("mv {token_file}.new {token_file}")),
        "the writer must put a random token at {token_file} in one rename: {script}"
    );
    assert_eq!(
        k8s_mount(&init[writer_at], volume).map(|(p, _)| p),
        Some(path),
        "the writer mounts {volume} where the others read it"
    );

    // Probes: exec inside the secretcache image (loopback only), with the binary its Dockerfile installs, on /ping.
    // The liveness probe gets a hung sidecar restarted (issue 25: nothing restarted one that had stopped answering).
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let command = exec_probe(sidecar, probe);
        assert_eq!(
            command.first(),
            Some(&dockerfile_probe_binary()),
            "{probe}: {command:?}"
        );
        assert_eq!(
            command.last().map(String::as_str),
            Some(PING),
            "{probe}: {command:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The image

#[test]
fn sidecar_dockerfile_copies_what_make_package_builds() {
    // Where layer/build.sh puts the secretcache binary: "$out/secretcache/bootstrap", out = target/lambda/<arch>.
    let build = read("layer/build.sh");
    assert!(
        build.contains("out=\"$root/target/lambda/$arch\""),
        "layer/build.sh no longer builds into target/lambda/<arch>"
    );
    assert!(
        build.contains("\"$out/secretcache/bootstrap\""),
        "layer/build.sh no longer reads $out/secretcache/bootstrap"
    );
    let built = |arch: &str| format!("target/lambda/{arch}/secretcache/bootstrap");

    let dockerfile = read(DOCKERFILE);
    let sources: Vec<String> = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .map(|l| {
            let words: Vec<&str> = l
                .split_whitespace()
                .skip(1)
                .filter(|w| !w.starts_with("--"))
                .collect();
            assert_eq!(words.len(), 2, "COPY <source> <dest>: {l}");
            words[0].to_string()
        })
        .collect();
    assert_eq!(
        sources,
        vec![built("x86_64"), built("arm64")],
        "the Dockerfile's build-context COPYs"
    );

    // The context keeps exactly those binaries.
    let ignore = read("deploy/Dockerfile.dockerignore");
    let kept: Vec<&str> = ignore.lines().filter_map(|l| l.strip_prefix('!')).collect();
    assert_eq!(
        kept,
        vec![built("x86_64").as_str(), built("arm64").as_str()]
    );
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        "the context must exclude everything else"
    );

    // Non-root, with the probe binary, on 2773.
    assert!(
        dockerfile.lines().any(|l| l == "USER 65532:65532"),
        "runs as the non-root user 65532"
    );
    assert!(dockerfile.lines().any(|l| l == "EXPOSE 2773"));
    assert!(
        dockerfile.contains(&format!("\"{}\"", dockerfile_probe_binary())),
        "HEALTHCHECK uses the probe binary"
    );
    assert!(dockerfile.contains(&format!("\"{}\", \"{PING}\"]", dockerfile_probe_binary())));

    // After `make package` (make test builds both architectures first), each binary is where the Dockerfile looks.
    for arch in [
        secretcache_tests::Arch::X86_64,
        secretcache_tests::Arch::Arm64,
    ] {
        let arch = arch.as_str();
        if workspace_root()
            .join(format!("layer/dist/secretcache-layer-{arch}.zip"))
            .exists()
        {
            let path = workspace_root().join(built(arch));
            assert!(
                path.is_file(),
                "make package built the {arch} layer but not {}",
                path.display()
            );
        } else {
            secretcache_tests::report::skipped(&format!(
                "layer/dist has no {arch} layer zip (no `make package` yet): not checking {}",
                built(arch)
            ));
        }
    }
}
