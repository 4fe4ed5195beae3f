//! One Redis node behind an address that moves to a promoted replica (as a managed Redis's
//! endpoint does on failover): the replica lacked acknowledged events, and every client that had
//! them is told with an `sse-reset`, even when the promoted replica got more new events than
//! were lost before the store reconnected.
#![cfg(feature = "redis")]

mod common;
mod redis_support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use poem_sse_ext::{store::Retention, Hub};
use redis_support::*;
use tokio::{net::TcpListener, task::JoinSet};

/// A TCP proxy on a loopback port, forwarding to a port the test chooses; moving it cuts every
/// connection it carries.
struct Proxy {
    port: u16,
    target: Arc<Mutex<u16>>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Arc::new(Mutex::new(target));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn({
            let target = Arc::clone(&target);
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let to = *target.lock().expect("target");
                    connections.lock().expect("connections").spawn(async move {
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        Self {
            port,
            target,
            connections,
            accept,
        }
    }

    /// Points the proxy at `target` and cuts what it carried.
    fn move_to(&self, target: u16) {
        *self.target.lock().expect("target") = target;
        self.connections.lock().expect("connections").abort_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.connections.lock().expect("connections").abort_all();
    }
}

/// Waits (up to 5 s) until the stream `sse:ledger` on `node` holds `len` entries.
async fn until_len(node: &mut redis::aio::MultiplexedConnection, len: u64) {
    for _ in 0..200 {
        let now: u64 = redis::cmd("XLEN")
            .arg("sse:ledger")
            .query_async(node)
            .await
            .expect("XLEN");
        if now == len {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("sse:ledger never held {len} entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_that_lacked_acknowledged_events_gives_the_reset() {
    // The store's warnings say what it found, should this fail.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("poem_sse_ext=info")
        .with_test_writer()
        .try_init();
    let (Some(primary), Some(replica)) = (redis(), redis()) else {
        return;
    };
    let mut on_replica = redis::Client::open(replica.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut on_primary = redis::Client::open(primary.url())
        .expect("client")
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5))),
        )
        .await
        .expect("connect");
    // Replicate at once (the full sync otherwise waits 5 s for more replicas).
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-diskless-sync-delay")
        .arg(0)
        .exec_async(&mut on_primary)
        .await
        .expect("CONFIG SET");
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .exec_async(&mut on_replica)
        .await
        .expect("REPLICAOF");
    for _ in 0..200 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut on_replica)
            .await
            .expect("INFO");
        if info.contains("master_link_status:up") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let proxy = Proxy::start(primary.port()).await;
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let hub = Hub::builder()
        .store(store(&url, Retention::default()).await)
        .build();
    let server = serve(&hub).await;
    let client = http1();
    let mut open = connect(&client, &server.url("/events/ledger"), None).await;

    for n in 0..5 {
        publish(&hub, "ledger", &format!("kept-{n}")).await;
    }
    let kept = open.next_events(5, WAIT).await.expect("kept events");
    // The replica has them (WAIT would only count the writes of its own connection).
    until_len(&mut on_replica, 5).await;

    // The replica is promoted; the primary still acknowledges three more events.
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .exec_async(&mut on_replica)
        .await
        .expect("promote");
    for n in 0..3 {
        publish(&hub, "ledger", &format!("lost-{n}")).await;
    }
    let lost = open
        .next_events(3, WAIT)
        .await
        .expect("the events Redis will lose");
    // More new events than were lost reach the promoted replica before the store does, a few
    // milliseconds after the lost ones, as a promotion takes at least that (in the same
    // millisecond, the new master's ids could be the lost ones again).
    tokio::time::sleep(Duration::from_millis(10)).await;
    for n in 0..6 {
        redis::cmd("XADD")
            .arg("sse:ledger")
            .arg("*")
            .arg("f")
            .arg(format!("data: new-{n}\n\n"))
            .exec_async(&mut on_replica)
            .await
            .expect("XADD");
    }
    proxy.move_to(replica.port());

    let reset = open.next_event(WAIT).await.expect("event").expect("open");
    assert_eq!(reset.event_type, RESET, "{reset:?}");
    let body: serde_json::Value = reset.json().expect("json");
    assert_eq!(body["reason"], "epoch");
    assert_eq!(body["resume_from"], kept[4].last_event_id.as_str());
    assert_eq!(
        data_of(&mut open, 6).await,
        (0..6).map(|n| format!("new-{n}")).collect::<Vec<_>>()
    );
    // A client that had read a lost event and comes back is told too.
    let mut back = connect(
        &client,
        &server.url("/events/ledger"),
        Some(&lost[2].last_event_id),
    )
    .await;
    let reset = back.next_event(WAIT).await.expect("event").expect("open");
    assert_eq!(reset.event_type, RESET);
    assert_eq!(
        reset.json::<serde_json::Value>().expect("json")["resume_from"],
        kept[4].last_event_id.as_str()
    );
    assert_eq!(data_of(&mut back, 6).await.len(), 6);
    // Publishing goes on, on the promoted replica (the move cut the store's command
    // connection: the first attempt may fail, and reconnects).
    let mut published = false;
    for _ in 0..50 {
        if hub
            .publish("ledger", poem_sse_ext::Event::text("after"))
            .await
            .is_ok()
        {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(published, "publishing works again");
    assert_eq!(data_of(&mut open, 1).await, ["after"]);
    let ledger = hub.metrics().channels["ledger"].clone();
    assert_eq!(ledger.resets, 2);
    server.stop().await;
}
