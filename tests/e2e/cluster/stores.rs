//! The shared stores against the one suite every store backend passes
//! (`laneway_auth::store::suite`), then what only a shared store does:
//! another node sees its entries, and Redis away costs nothing but time.

use laneway_auth::store::{NewSuppression, TokenStore, suite};
use laneway_auth::{Scope, Store, SuppressionStore, TokenInfo};
use laneway_cluster::{ClusterSuppressions, ClusterTokens};
use laneway_common::MessageId;
use laneway_tests::redis::Redis;

fn local(dir: &tempfile::TempDir, name: &str) -> Store {
    Store::open(&dir.path().join(format!("{name}.redb"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_stores_pass_the_store_suite() {
    let Some(redis) = Redis::start("cluster::stores::suite") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = ClusterSuppressions::connect(&redis.url(), "lw:", "n1", local(&dir, "a")).unwrap();
    suite::suppressions(&s).await;
    let s = ClusterSuppressions::connect(&redis.url(), "lw2:", "n1", local(&dir, "b")).unwrap();
    suite::pagination(&s).await;
    let t = ClusterTokens::connect(&redis.url(), "lw:", local(&dir, "c")).unwrap();
    suite::tokens(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_sees_the_entries_and_redis_away_loses_none() {
    let Some(mut redis) = Redis::start("cluster::stores::shared") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let s1 = ClusterSuppressions::connect(&url, "lw:", "n1", local(&dir, "s1")).unwrap();
    let s2 = ClusterSuppressions::connect(&url, "lw:", "n2", local(&dir, "s2")).unwrap();
    let t1 = ClusterTokens::connect(&url, "lw:", local(&dir, "t1")).unwrap();
    let t2 = ClusterTokens::connect(&url, "lw:", local(&dir, "t2")).unwrap();
    let n = |a: &str| NewSuppression::new("shop.test", a, "550 5.1.1", Scope::All, 1_000);
    s1.suppress(&n("bob@x.test")).await.unwrap();
    s2.resync().await.unwrap();
    assert!(s2.check("shop.test", "bob@x.test").await.unwrap().is_some());
    assert!(s1.unsuppress("shop.test", "bob@x.test").await.unwrap());
    let r = s2.resync().await.unwrap();
    assert_eq!(r.removed, 1, "{r:?}");
    assert!(s2.check("shop.test", "bob@x.test").await.unwrap().is_none());
    // a token one node wrote, the other reads
    let id = MessageId::from_u64(0x42);
    let info = TokenInfo {
        recipient: "carol@x.test".into(),
        sender: "app@shop.test".into(),
        sender_domain: "shop.test".into(),
        lane: 4,
        expires_at: laneway_common::envelope::now_ms() + 3_600_000,
    };
    t1.remember(vec![(id, Some(0), info.clone())])
        .await
        .unwrap();
    assert_eq!(t2.lookup(id, Some(0)).await.unwrap(), Some(info.clone()));
    assert_eq!(t2.lookup(id, Some(1)).await.unwrap(), None);

    // Redis away: writes land locally and wait; a token of another node
    // cannot be read, and says so instead of "unknown"
    redis.kill();
    s1.suppress(&n("dave@x.test")).await.unwrap();
    assert!(
        s1.check("shop.test", "dave@x.test")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s1.pending(), 1);
    let later = MessageId::from_u64(0x43);
    t1.remember(vec![(later, None, info.clone())])
        .await
        .unwrap();
    assert_eq!(t1.pending(), 1);
    assert!(
        t2.lookup(later, None).await.is_err(),
        "an error, not unknown"
    );
    assert!(s2.resync().await.is_err());
    // back, empty: the waiting writes go, and a comparison re-seeds
    redis.restart();
    let mut pushed = None;
    for _ in 0..100 {
        if let Ok(r) = s1.resync().await {
            pushed = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = pushed.expect("Redis answers again");
    assert_eq!(s1.pending(), 0, "{r:?}");
    assert_eq!(t1.flush().await.unwrap(), 1);
    assert_eq!(t2.lookup(later, None).await.unwrap(), Some(info));
    let r = s2.resync().await.unwrap();
    assert_eq!(r.pulled, 1, "{r:?}");
    assert!(
        s2.check("shop.test", "dave@x.test")
            .await
            .unwrap()
            .is_some()
    );
}
