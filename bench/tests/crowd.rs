//! The lean crowd client against a real HTTP/2 server (the axum peer): every stream's answer,
//! every receipt of a broadcast, refusals and the end of the streams are counted as they happen.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bench::crowd::{Crowd, CrowdPlan};
use bench::net::Target;
use bench::publish::post_once;
use bench::server::{Launcher, Running, ServerSpec};

async fn axum_peer(name: &str) -> (Running, Target) {
    let log_dir: PathBuf =
        std::env::temp_dir().join(format!("bench-crowd-{name}-{}", std::process::id()));
    let spec = ServerSpec::h2c(
        "axum Sse",
        [env!("CARGO_BIN_EXE_peer-axum"), "--listen", "{addr}"]
            .map(String::from)
            .to_vec(),
    );
    let server = Launcher { pin: None, log_dir }
        .start(&spec, false)
        .await
        .expect("the axum peer starts");
    let target = Target::parse(&server.base, None, 0).expect("its address");
    (server, target)
}

fn plan(target: &Target, path: &str, connections: usize, per_conn: usize) -> CrowdPlan {
    CrowdPlan {
        addr: target.addr,
        authority: target.authority.clone(),
        path: path.into(),
        connections,
        per_conn,
        dial_concurrency: 2,
    }
}

#[tokio::test]
async fn every_stream_is_counted_connected_reached_once_and_ended() {
    let (server, target) = axum_peer("reach").await;
    let crowd = Crowd::start(&plan(&target, "/events/crowd", 3, 40));
    let live = crowd.live.clone();
    assert!(
        crowd
            .wait_until(Duration::from_secs(20), |l| l.settled() >= 120)
            .await,
        "settled: {} ({:?})",
        live.settled(),
        live.errors()
    );
    assert_eq!(live.connected.load(Ordering::Relaxed), 120);

    // An event before the watched one is read but not counted as reaching anyone.
    post_once(&target, &mut None, "crowd", 0, 1).await.unwrap();
    crowd
        .wait_until(Duration::from_secs(10), |l| {
            l.events.load(Ordering::Relaxed) >= 120
        })
        .await;
    live.watch(2);
    assert_eq!(live.reached.load(Ordering::Relaxed), 0);
    post_once(&target, &mut None, "crowd", 0, 2).await.unwrap();
    assert!(
        crowd
            .wait_until(Duration::from_secs(10), |l| l
                .reached
                .load(Ordering::Relaxed)
                >= 120)
            .await
    );
    // Another channel's event reaches no one here.
    post_once(&target, &mut None, "other", 0, 2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live.reached.load(Ordering::Relaxed), 120);
    assert_eq!(live.duplicates.load(Ordering::Relaxed), 0);
    assert_eq!(live.events.load(Ordering::Relaxed), 240);
    let latencies = live.latencies();
    assert_eq!(latencies.len(), 120);
    assert!(latencies.iter().all(|&l| l < 10_000_000), "{latencies:?}");

    // The server goes away: every stream is counted as ended.
    server.stop().await;
    assert!(
        crowd
            .wait_until(Duration::from_secs(20), |l| l.ended.load(Ordering::Relaxed)
                >= 120)
            .await,
        "ended: {}",
        live.ended.load(Ordering::Relaxed)
    );
    crowd.stop().await;
}

#[tokio::test]
async fn refusals_are_counted_apart_from_streams() {
    let (server, target) = axum_peer("refuse").await;
    // A bad channel name: 400.
    let bad = Crowd::start(&plan(&target, "/events/no%20such", 1, 5));
    assert!(
        bad.wait_until(Duration::from_secs(10), |l| l.settled() >= 5)
            .await
    );
    assert_eq!(bad.live.refused.load(Ordering::Relaxed), 5);
    assert_eq!(bad.live.connected.load(Ordering::Relaxed), 0);
    bad.stop().await;

    // hyper's HTTP/2 server takes 200 streams per connection by default: the rest are reset.
    let over = Crowd::start(&plan(&target, "/events/crowd", 1, 210));
    assert!(
        over.wait_until(Duration::from_secs(10), |l| l.settled() >= 210)
            .await,
        "settled {}",
        over.live.settled()
    );
    assert_eq!(over.live.connected.load(Ordering::Relaxed), 200);
    assert_eq!(over.live.refused.load(Ordering::Relaxed), 10);
    over.stop().await;

    // Nothing listening: every stream of the connection failed.
    server.stop().await;
    let gone = Crowd::start(&plan(&target, "/events/crowd", 2, 3));
    assert!(
        gone.wait_until(Duration::from_secs(10), |l| l.settled() >= 6)
            .await
    );
    assert_eq!(gone.live.failed.load(Ordering::Relaxed), 6);
    gone.stop().await;
}
