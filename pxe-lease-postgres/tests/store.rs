//! The PostgreSQL lease store against a real PostgreSQL that the test starts (initdb and
//! pg_ctl in a scratch directory, Unix socket only): two store instances, as two servers
//! would hold, allocating at once never bind one address to two clients; either renews the
//! other's lease; leases expire by time; reservations live in the database; an outage fails
//! calls (no guessed address) and the store serves again when the database is back.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pxe_dhcp::lease::{LeaseClient, LeaseStore, Refusal, StoreError, Subnet};
use pxe_lease_postgres::PostgresStore;
use pxe_policy::MacAddr;
use pxe_testkit::Postgres;

fn subnet() -> Subnet {
    // 50 pool addresses.
    Subnet::new(
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        Ipv4Addr::new(192, 0, 2, 100),
        Ipv4Addr::new(192, 0, 2, 149),
    )
    .lease_time(Duration::from_secs(3600))
}

fn mac(n: u32) -> MacAddr {
    let [_, a, b, c] = n.to_be_bytes();
    MacAddr([2, 0, 0, a, b, c])
}

fn client(n: u32) -> LeaseClient<'static> {
    LeaseClient {
        mac: mac(n),
        client_id: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn store(db: &Postgres, subnet: &Subnet, name: &str) -> Arc<PostgresStore> {
    let store = PostgresStore::new(&db.url(), vec![subnet.clone()])
        .expect("store")
        .server_name(name);
    store.wait_until_ready().await;
    Arc::new(store)
}

/// DISCOVER then REQUEST of the offered address: the address acknowledged, if any.
async fn dora(store: &PostgresStore, subnet: &Subnet, n: u32) -> Option<Ipv4Addr> {
    let now = SystemTime::now();
    let offer = store.offer(subnet, client(n), None, now).await.unwrap()?;
    match store
        .request(subnet, client(n), offer.lease.ip, now)
        .await
        .unwrap()
    {
        Ok(grant) => Some(grant.lease.ip),
        Err(Refusal::InUse) => None,
        Err(other) => panic!("client {n}: unexpected refusal {other:?}"),
    }
}

/// Both servers hear a client's DISCOVER and each offers; the client requests one offer
/// (from the server `n` picks): the address acknowledged, if any.
async fn dora_on_two(
    a: &PostgresStore,
    b: &PostgresStore,
    subnet: &Subnet,
    n: u32,
) -> Option<Ipv4Addr> {
    let now = SystemTime::now();
    let (from_a, from_b) = tokio::join!(
        a.offer(subnet, client(n), None, now),
        b.offer(subnet, client(n), None, now)
    );
    let (store, offer) = if n.is_multiple_of(2) {
        (a, from_a.unwrap()?)
    } else {
        (b, from_b.unwrap()?)
    };
    match store
        .request(subnet, client(n), offer.lease.ip, now)
        .await
        .unwrap()
    {
        Ok(grant) => Some(grant.lease.ip),
        Err(Refusal::InUse) => None,
        Err(other) => panic!("client {n}: unexpected refusal {other:?}"),
    }
}

/// Two stores on one database, 80 clients for 50 addresses, all at once, each client's
/// DISCOVER heard by both: no address is ever acknowledged to two clients, and the database
/// holds one binding per address and per client.
#[test]
fn two_stores_allocating_at_once_never_share_an_address() {
    let Some(db) = Postgres::start("two_stores_allocating_at_once_never_share_an_address") else {
        return;
    };
    let subnet = subnet();
    runtime().block_on(async {
        let a = store(&db, &subnet, "a").await;
        let b = store(&db, &subnet, "b").await;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..80 {
            let (a, b) = (Arc::clone(&a), Arc::clone(&b));
            let subnet = subnet.clone();
            tasks.spawn(async move { (n, dora_on_two(&a, &b, &subnet, n).await) });
        }
        let mut holder: HashMap<Ipv4Addr, u32> = HashMap::new();
        for (n, acked) in tasks.join_all().await {
            let Some(ip) = acked else { continue };
            assert!(subnet.contains(ip));
            let previous = holder.insert(ip, n);
            assert_eq!(
                previous, None,
                "{ip} acknowledged to clients {previous:?} and {n}"
            );
        }
        // Most clients are served (a client refused because the other store's offer took
        // its address retransmits; the pool is 50 for 80).
        assert!(holder.len() >= 40, "only {} clients served", holder.len());
        let clients: HashSet<u32> = holder.values().copied().collect();
        assert_eq!(clients.len(), holder.len());
        let bound = db.psql("SELECT count(*), count(DISTINCT mac) FROM pxe_leases");
        assert_eq!(bound.trim(), format!("{0}|{0}", holder.len()));
    });
}

/// A lease granted through one store is renewed through the other, found by MAC, client
/// identifier and address through both, released through either.
#[test]
fn either_store_renews_the_others_lease() {
    let Some(db) = Postgres::start("either_store_renews_the_others_lease") else {
        return;
    };
    let subnet = subnet();
    runtime().block_on(async {
        let a = store(&db, &subnet, "a").await;
        let b = store(&db, &subnet, "b").await;
        let with_id = LeaseClient {
            mac: mac(1),
            client_id: Some(&[1, 0x52, 0x54]),
        };
        let now = SystemTime::now();
        let offer = a.offer(&subnet, with_id, None, now).await.unwrap().unwrap();
        let first = a
            .request(&subnet, with_id, offer.lease.ip, now)
            .await
            .unwrap()
            .unwrap();
        // Renewing (or rebinding) with the other server: same address, a later expiry.
        let later = now + Duration::from_secs(60);
        let renewed = b
            .request(&subnet, with_id, first.lease.ip, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renewed.lease.ip, first.lease.ip);
        assert!(renewed.lease.expires > first.lease.expires);
        for store in [&a, &b] {
            let by_mac = store.lease_by_mac(mac(1), later).await.unwrap().unwrap();
            assert_eq!(by_mac.ip, first.lease.ip);
            let by_id = store.lease_by_client_id(&[1, 0x52, 0x54], later).await;
            assert_eq!(by_id.unwrap().unwrap().ip, first.lease.ip);
            let by_ip = store.lease_by_address(first.lease.ip, later).await.unwrap();
            assert_eq!(by_ip.unwrap().mac, mac(1));
        }
        // A DISCOVER to the other server offers the bound address again.
        let again = b
            .offer(&subnet, with_id, None, later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.lease.ip, first.lease.ip);
        // Another client cannot take it.
        let refused = b.request(&subnet, client(2), first.lease.ip, later).await;
        assert_eq!(refused.unwrap(), Err(Refusal::InUse));
        b.release(mac(1), first.lease.ip, later).await.unwrap();
        assert_eq!(a.lease_by_mac(mac(1), later).await.unwrap(), None);
        // Declined addresses stay out of use.
        let offer = a
            .offer(&subnet, client(3), None, later)
            .await
            .unwrap()
            .unwrap();
        let ip = offer.lease.ip;
        a.request(&subnet, client(3), ip, later)
            .await
            .unwrap()
            .unwrap();
        b.decline(mac(3), ip, later).await.unwrap();
        let next = a.offer(&subnet, client(3), Some(ip), later).await.unwrap();
        assert_ne!(next.unwrap().lease.ip, ip);
        assert_eq!(
            a.request(&subnet, client(4), ip, later).await.unwrap(),
            Err(Refusal::InUse)
        );
    });
}

/// Leases end by time: once a lease has lapsed, its address goes to a new client when the
/// pool has nothing else.
#[test]
fn leases_expire_by_time() {
    let Some(db) = Postgres::start("leases_expire_by_time") else {
        return;
    };
    let subnet = Subnet::new(
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        Ipv4Addr::new(192, 0, 2, 10),
        Ipv4Addr::new(192, 0, 2, 11),
    )
    .lease_time(Duration::from_secs(60));
    runtime().block_on(async {
        let a = store(&db, &subnet, "a").await;
        let now = SystemTime::now();
        for n in [1, 2] {
            let offer = a
                .offer(&subnet, client(n), None, now)
                .await
                .unwrap()
                .unwrap();
            a.request(&subnet, client(n), offer.lease.ip, now)
                .await
                .unwrap()
                .unwrap();
        }
        // Full (offers would also be reclaimed, bindings never are).
        assert!(a
            .offer(&subnet, client(3), None, now)
            .await
            .unwrap()
            .is_none());
        // After the lease time, the lapsed leases are gone and their addresses reusable.
        let later = now + Duration::from_secs(61);
        assert_eq!(a.lease_by_mac(mac(1), later).await.unwrap(), None);
        let offer = a
            .offer(&subnet, client(3), None, later)
            .await
            .unwrap()
            .unwrap();
        let grant = a
            .request(&subnet, client(3), offer.lease.ip, later)
            .await
            .unwrap()
            .unwrap();
        assert!(subnet.contains(grant.lease.ip));
    });
}

/// A reservation added to the database with SQL is honoured by every store: the client gets
/// its address and host name, and nobody else gets that address.
#[test]
fn reservations_live_in_the_database() {
    let Some(db) = Postgres::start("reservations_live_in_the_database") else {
        return;
    };
    let subnet = subnet();
    runtime().block_on(async {
        let a = store(&db, &subnet, "a").await;
        db.psql(
            "INSERT INTO pxe_reservations (ip, mac, host_name) \
             VALUES ('192.0.2.120', '02:00:00:00:00:07', 'node7')",
        );
        let now = SystemTime::now();
        let offer = a
            .offer(&subnet, client(7), None, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offer.lease.ip, Ipv4Addr::new(192, 0, 2, 120));
        assert_eq!(offer.host_name.as_deref(), Some("node7"));
        let grant = a
            .request(&subnet, client(7), offer.lease.ip, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(grant.host_name.as_deref(), Some("node7"));
        assert_eq!(
            a.request(&subnet, client(7), Ipv4Addr::new(192, 0, 2, 121), now)
                .await
                .unwrap(),
            Err(Refusal::Reserved)
        );
        assert_eq!(
            a.request(&subnet, client(8), Ipv4Addr::new(192, 0, 2, 120), now)
                .await
                .unwrap(),
            Err(Refusal::InUse)
        );
        // A store given reservations at start writes them there.
        let b = PostgresStore::new(&db.url(), vec![subnet.clone()])
            .unwrap()
            .reservations(vec![pxe_dhcp::lease::Reservation::by_mac(
                mac(9),
                Ipv4Addr::new(192, 0, 2, 130),
            )]);
        b.wait_until_ready().await;
        let offer = a
            .offer(&subnet, client(9), None, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(offer.lease.ip, Ipv4Addr::new(192, 0, 2, 130));
    });
}

/// The database goes away: calls fail as unavailable (the server then answers nothing), and
/// once it is back the same store serves again. A store created while it is down waits.
#[test]
fn an_outage_fails_calls_and_service_resumes() {
    let Some(db) = Postgres::start("an_outage_fails_calls_and_service_resumes") else {
        return;
    };
    let subnet = subnet();
    runtime().block_on(async {
        let a = store(&db, &subnet, "a").await;
        assert!(dora(&a, &subnet, 1).await.is_some());
        db.stop();
        let failed = a.offer(&subnet, client(2), None, SystemTime::now()).await;
        assert!(
            matches!(failed, Err(StoreError::Unavailable(_))),
            "{failed:?}"
        );
        // A store that starts now waits for the database.
        let late = PostgresStore::new(&db.url(), vec![subnet.clone()]).unwrap();
        let waiting = tokio::spawn(async move {
            late.wait_until_ready().await;
            late
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !waiting.is_finished(),
            "a store became ready with the database down"
        );
        db.start_again();
        let late = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("ready once the database is back")
            .unwrap();
        // Both serve again; the lease granted before the outage is still there.
        assert!(dora(&a, &subnet, 2).await.is_some());
        assert!(dora(&late, &subnet, 3).await.is_some());
        let kept = late.lease_by_mac(mac(1), SystemTime::now()).await.unwrap();
        assert!(kept.is_some());
    });
}

/// Pool usage is counted in the database, so two servers report the fleet's numbers: what
/// either bound is in use, what either holds under offer is not free, and a lapsed lease
/// is free again.
#[test]
fn pool_usage_is_the_fleets() {
    let Some(db) = Postgres::start("pool_usage_is_the_fleets") else {
        return;
    };
    let subnet = subnet().lease_time(Duration::from_secs(60));
    runtime().block_on(async {
        let a = store(&db, &subnet, "a").await;
        let b = store(&db, &subnet, "b").await;
        let now = SystemTime::now();
        let usage = |store: Arc<PostgresStore>, at| {
            let subnet = subnet.clone();
            async move {
                let usage = store.pool_usage(&subnet, at).await.unwrap().unwrap();
                (usage.in_use, usage.free)
            }
        };
        assert_eq!(usage(a.clone(), now).await, (0, 50));
        assert!(dora(&a, &subnet, 1).await.is_some());
        assert!(dora(&b, &subnet, 2).await.is_some());
        b.offer(&subnet, client(3), None, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(usage(a.clone(), now).await, (2, 47));
        assert_eq!(usage(b.clone(), now).await, (2, 47));
        let later = now + Duration::from_secs(61);
        assert_eq!(usage(a.clone(), later).await, (0, 50));
    });
}
