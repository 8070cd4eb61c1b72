//! Scenario 3: `/items` through the local Lambda environment, both zips, at a steady request rate, while the
//! database password is rotated the single-user way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{leaks_in, Outcome, RssSampler, Scale};
use crate::moto::{Endpoint, Moto};
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// Scenario 3: `/items` through the local Lambda environment, both zips, at a steady request rate, while the
/// database password is rotated the single-user way: the new value is written as AWSPENDING, the role's password is
/// changed, then the new value is promoted with `PutSecretValue` (moto mishandles `UpdateSecretVersionStage`).
///
/// The function's pool recycles each connection after 1 s, so new logins keep happening all through the window in
/// which the database already wants the new password and AWSCURRENT still holds the old one: the function must find
/// the AWSPENDING value through the extension, without failing a request.
pub async fn run(scale: Scale) -> Outcome {
    use lambda_env::{front_door, LambdaEnv};

    use crate::postgres::{new_password, PgCluster};

    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("relrotate").await;
    let old_password = db.password.clone();
    let arn = seed::secret(&sm, &unique("relrotate/db"), &db.secret_json())
        .await
        .arn;
    let mut options = crate::items_with_layer(
        crate::lambda_zip("items-function", crate::Arch::host()),
        crate::Arch::host(),
        &moto.endpoint(),
        &arn,
    )
    .var("SECRETS_MANAGER_TTL", "3")
    .var("DATABASE_POOL_MAX_LIFETIME_SECS", "1");
    options.timeout = Duration::from_secs(10);
    let env = LambdaEnv::start(options)
        .await
        .expect("the local Lambda environment starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the front door");
    let front = format!(
        "http://{}/items?limit=5",
        listener.local_addr().expect("addr")
    );
    let front_task = tokio::spawn(front_door::serve(
        Arc::clone(&env),
        listener,
        std::future::pending(),
    ));
    let extension_pid = env
        .processes()
        .await
        .into_iter()
        .find(|(name, _)| name.contains("secretcache"))
        .map(|(_, pid)| pid);
    let rss = RssSampler::start(extension_pid);

    // The load: one request every `1 / rate` seconds for the whole run, each on its own task so that a slow one
    // delays none of the next (the environment still runs one invoke at a time, as Lambda does).
    let period = Duration::from_secs(1) / scale.rotation_rate;
    let total = scale.rotation_run.as_millis() / period.as_millis().max(1);
    let load = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        let mut requests = Vec::new();
        for _ in 0..total {
            ticker.tick().await;
            let url = front.clone();
            requests.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = crate::http::get(&url, &[]).await;
                (t.elapsed(), r)
            }));
        }
        let mut done = Vec::with_capacity(requests.len());
        for r in requests {
            done.push(r.await.expect("request task"));
        }
        done
    });

    // The rotation, a third of the way in; the pending window lasts a third of the run.
    tokio::time::sleep(scale.rotation_run / 3).await;
    let new_password = new_password();
    let mut rotated = db.clone();
    rotated.password = new_password.clone();
    sm.put_secret_value()
        .secret_id(&arn)
        .client_request_token(format!(
            "pending-{}-{}",
            crate::random_token(),
            crate::random_token()
        ))
        .secret_string(rotated.secret_json())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("PutSecretValue AWSPENDING");
    pg.set_password(&db.username, &new_password).await;
    tokio::time::sleep(scale.rotation_run / 3).await;
    sm.put_secret_value()
        .secret_id(&arn)
        .client_request_token(format!(
            "current-{}-{}",
            crate::random_token(),
            crate::random_token()
        ))
        .secret_string(rotated.secret_json())
        .send()
        .await
        .expect("PutSecretValue AWSCURRENT");

    let done = load.await.expect("load task");
    let mut latencies = Vec::with_capacity(done.len());
    let (mut failed, mut scanned, mut leaks) = (0u64, 0u64, 0u64);
    let secrets = [old_password, new_password];
    for (elapsed, r) in &done {
        latencies.push(*elapsed);
        match r {
            Ok(resp) => {
                if resp.status != 200 {
                    failed += 1;
                }
                scanned += 1;
                leaks += leaks_in(&resp.text(), &secrets);
            }
            Err(_) => failed += 1,
        }
    }
    let logged_in_again = pg.sessions_of(&db.username).await;
    let max_rss = rss.max();
    drop(rss);
    // Shut down first: the logs then hold every line either process wrote.
    env.shutdown().await;
    front_task.abort();
    let logs = env.logs();
    let pending_logins = logs
        .iter()
        .filter(|l| l.text.contains("login works again") && l.text.contains("AWSPENDING"))
        .count();
    scanned += logs.len() as u64;
    leaks += logs
        .iter()
        .map(|l| leaks_in(&l.text, &secrets))
        .sum::<u64>();
    // The rotation must have been exercised, not dodged: logins with the pending value happened, and the role is
    // still connected afterwards (with the new password, the only one the database accepts).
    if pending_logins == 0 || logged_in_again == 0 {
        failed += 1;
    }
    Outcome {
        scenario: format!(
            "3. rotation under load: {} /items at {}/s through both zips",
            done.len(),
            scale.rotation_rate
        ),
        sent: done.len() as u64,
        failed,
        p99_ms: percentile_ms(&latencies, 99.0),
        max_rss_kib: max_rss,
        rule: format!(
            "any non-200 /items fails; AWSPENDING written, ALTER ROLE, promoted {} s later by PutSecretValue; \
             pool connections live 1 s; {pending_logins} login(s) recovered through AWSPENDING",
            (scale.rotation_run / 3).as_secs_f64()
        ),
        scanned,
        leaks,
    }
}
