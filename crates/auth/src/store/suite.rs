//! The one test suite every store backend runs (the local redb one here,
//! the Redis one in `laneway-cluster`): the same calls must mean the same
//! things whichever backend answers. Enabled by the `test-suite` feature.
//!
//! Each function starts from an empty store and panics on a difference.

use laneway_common::MessageId;

use super::{
    NewSuppression, Scope, StoreError, Suppression, SuppressionStore, TokenInfo, TokenStore,
};

/// [`SuppressionStore::suppress`] of a [`NewSuppression::new`].
async fn suppress_with(
    s: &dyn SuppressionStore,
    (d, a, r, scope, since): (&str, &str, &str, Scope, u64),
) -> Result<Suppression, StoreError> {
    s.suppress(&NewSuppression::new(d, a, r, scope, since))
        .await
}

/// Suppressions: normalisation, per-sender-domain lists, scope upgrades
/// that never downgrade, invalid arguments, removal and counting.
pub async fn suppressions(s: &dyn SuppressionStore) {
    let e = suppress_with(
        s,
        (
            "Shop.Example.",
            "<Bob@Example.NET>",
            "550 5.1.1",
            Scope::All,
            100,
        ),
    )
    .await
    .unwrap();
    assert_eq!(e.address, "Bob@example.net");
    assert_eq!(e.sender_domain, "shop.example");
    let got = s
        .check("shop.example", "Bob@EXAMPLE.net")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.reason.as_str(), got.scope, got.since),
        ("550 5.1.1", Scope::All, 100)
    );
    // local part exact; other sender domains unaffected
    assert_eq!(
        s.check("shop.example", "bob@example.net").await.unwrap(),
        None
    );
    assert_eq!(
        s.check("bank.example", "Bob@example.net").await.unwrap(),
        None
    );
    assert_eq!(s.count().await.unwrap(), 1);
    assert!(
        s.unsuppress("SHOP.example", "Bob@example.net")
            .await
            .unwrap()
    );
    assert!(
        !s.unsuppress("shop.example", "Bob@example.net")
            .await
            .unwrap()
    );
    assert_eq!(s.count().await.unwrap(), 0);

    // scope: a repeat keeps the first record; All upgrades Bulk; Bulk
    // never downgrades All; removed, it may come back as Bulk
    let a = "u@example.net";
    let first = suppress_with(s, ("d.example", a, "complaint", Scope::Bulk, 1))
        .await
        .unwrap();
    assert_eq!(first.scope, Scope::Bulk);
    let again = suppress_with(s, ("d.example", a, "again", Scope::Bulk, 2))
        .await
        .unwrap();
    assert_eq!(again, first);
    let up = suppress_with(s, ("d.example", a, "550 5.1.1", Scope::All, 3))
        .await
        .unwrap();
    assert_eq!(
        (up.scope, up.since, up.reason.as_str()),
        (Scope::All, 3, "550 5.1.1")
    );
    let down = suppress_with(s, ("d.example", a, "complaint", Scope::Bulk, 4))
        .await
        .unwrap();
    assert_eq!(down, up);
    assert_eq!(s.check("d.example", a).await.unwrap(), Some(up));
    s.unsuppress("d.example", a).await.unwrap();
    let bulk = suppress_with(s, ("d.example", a, "complaint", Scope::Bulk, 5))
        .await
        .unwrap();
    assert_eq!(bulk.scope, Scope::Bulk);
    s.unsuppress("d.example", a).await.unwrap();

    for (d, a) in [
        ("", "a@b.c"),
        ("x.example", ""),
        ("x.example", "a\0@b.c"),
        ("x.example", "@b.c"),
        ("a@b", "a@b.c"),
    ] {
        assert!(
            matches!(
                suppress_with(s, (d, a, "r", Scope::All, 0)).await,
                Err(StoreError::Invalid { .. })
            ),
            "{d:?} {a:?}"
        );
    }
    assert!(matches!(
        s.list(None, 10, Some("zz")).await,
        Err(StoreError::BadCursor(_))
    ));
    assert_eq!(s.count().await.unwrap(), 0);
}

/// Pagination: every entry exactly once in (domain, address) order, and
/// changes between pages neither repeat nor skip the others.
pub async fn pagination(s: &dyn SuppressionStore) {
    for i in 0..250u64 {
        let domain = if i % 2 == 0 { "a.example" } else { "b.example" };
        let address = format!("user{i:03}@example.net");
        suppress_with(s, (domain, &address, "r", Scope::All, i))
            .await
            .unwrap();
    }
    suppress_with(s, ("c.example", "z@example.net", "r", Scope::Bulk, 0))
        .await
        .unwrap();
    assert_eq!(s.count().await.unwrap(), 251);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = s.list(None, 40, cursor.as_deref()).await.unwrap();
        assert!(page.len() <= 40);
        seen.extend(page.into_iter().map(|e| (e.sender_domain, e.address)));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 251);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    sorted.dedup();
    assert_eq!(sorted.len(), 251);
    let (first, next) = s.list(Some("B.Example"), 100, None).await.unwrap();
    assert_eq!(first.len(), 100);
    assert!(first.iter().all(|e| e.sender_domain == "b.example"));
    s.unsuppress("b.example", &first[99].address).await.unwrap();
    suppress_with(s, ("b.example", "zzz@example.net", "r", Scope::All, 0))
        .await
        .unwrap();
    let (rest, end) = s
        .list(Some("b.example"), 100, next.as_deref())
        .await
        .unwrap();
    assert_eq!(end, None);
    let mut all: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|e| e.address.clone())
        .collect();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "no entry repeats across pages");
    assert_eq!(rest.last().unwrap().address, "zzz@example.net");
    assert_eq!(n, 126, "125 of b.example, one added after the cursor");
}

fn info(rcpt: &str, expires_at: u64) -> TokenInfo {
    TokenInfo {
        recipient: rcpt.into(),
        sender: "alice@example.com".into(),
        sender_domain: "example.com".into(),
        lane: 4,
        expires_at,
    }
}

/// Tokens: recorded in batches, looked up per recipient or message,
/// replaced when recorded again, purged exactly when expired.
pub async fn tokens(s: &dyn TokenStore) {
    let (a, b) = (MessageId::from_u64(1), MessageId::from_u64(2));
    s.remember(vec![
        (a, Some(0), info("x@r.test", 1_000)),
        (a, Some(1), info("y@r.test", 2_000)),
        (b, None, info("z@r.test", 3_000)),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.lookup(a, Some(1)).await.unwrap(),
        Some(info("y@r.test", 2_000))
    );
    assert_eq!(
        s.lookup(b, None).await.unwrap(),
        Some(info("z@r.test", 3_000))
    );
    assert_eq!(s.lookup(b, Some(0)).await.unwrap(), None);
    assert_eq!(s.lookup(MessageId::from_u64(9), None).await.unwrap(), None);
    // recorded again: replaced, with its new expiry
    s.remember(vec![(a, Some(0), info("x@r.test", 5_000))])
        .await
        .unwrap();
    assert_eq!(
        s.purge_expired(2_000).await.unwrap(),
        1,
        "only y (2000) expired"
    );
    assert_eq!(s.lookup(a, Some(1)).await.unwrap(), None);
    assert!(
        s.lookup(a, Some(0)).await.unwrap().is_some(),
        "x moved to 5000"
    );
    assert_eq!(s.purge_expired(4_000).await.unwrap(), 1);
    assert_eq!(s.lookup(b, None).await.unwrap(), None);
    assert_eq!(s.purge_expired(4_000).await.unwrap(), 0);
    assert!(s.lookup(a, Some(0)).await.unwrap().is_some());
}
