//! A [`LeaseStore`] on PostgreSQL: several boot servers, one set of leases.
//!
//! Every pxe-dhcp server that shares a database is authoritative for the same pools; the
//! database, not timing, keeps each address on one client:
//!
//! - `pxe_addresses` has one row per pool address (its primary key is the address) and a
//!   `mac` column that is `UNIQUE`: an address has one holder and a client holds one
//!   address, whatever several servers do at once.
//! - Each decision is one transaction. A free address is taken with
//!   `SELECT … FOR UPDATE SKIP LOCKED` (two servers allocating at once skip each other's
//!   rows), a REQUEST's binding is an `UPDATE` whose `WHERE` re-checks, on the row it has
//!   locked, that the address is the client's, free, lapsed or only offered. A transaction
//!   that loses a race (the same client allocated by the other server: a unique violation; a
//!   deadlock) is retried.
//! - Leases expire by time: an address is free once `expires` has passed (offers hold an
//!   address for the offer hold, bindings for the lease time, a DHCPDECLINE for ten minutes).
//! - Reservations live in `pxe_reservations`; the ones given to [`PostgresStore::reservations`]
//!   are written there at start, and operators may add more with SQL.
//!
//! The schema is created, or migrated, when the store first reaches the database, under an
//! advisory lock (two servers starting at once do not race). Until then, and whenever the
//! database cannot be reached, every call fails with [`StoreError::Unavailable`]: the server
//! answers nothing (it never guesses an address) and serves again once the database is back.
//! [`PostgresStore::wait_until_ready`] waits for it at start, saying so.
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use std::sync::Arc;
//! use pxe_dhcp::lease::Subnet;
//! use pxe_dhcp::server::DhcpServer;
//! use pxe_lease_postgres::PostgresStore;
//! use pxe_policy::{BootEveryone, LinuxBoot, SharedPolicy};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let subnet = Subnet::new(
//!     Ipv4Addr::new(192, 0, 2, 0), 24,
//!     Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 199),
//! );
//! let store = PostgresStore::new("postgres://pxe@db.example/pxe", vec![subnet.clone()])?;
//! store.wait_until_ready().await;
//! let policy = SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz")));
//! let server = DhcpServer::builder(policy)
//!     .authoritative(vec![subnet])
//!     .lease_store(Arc::new(store))
//!     .bind()
//!     .await?;
//! server.run().await?;
//! # Ok(())
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use deadpool_postgres::GenericClient;
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use pxe_dhcp::lease::{
    Assignment, Lease, LeaseClient, LeaseStore, Refusal, Reservation, StoreError, StoreFuture,
    Subnet, DEFAULT_OFFER_HOLD,
};
use pxe_policy::MacAddr;
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

/// How long a declined address stays out of use (as the embedded store).
const DECLINE_HOLD: Duration = Duration::from_secs(600);
/// How many times a transaction that lost a race is tried.
const ATTEMPTS: usize = 4;
/// Connections per server: enough for the requests one server has in flight at once.
const POOL_SIZE: usize = 16;

/// How long a request may wait for one of the [`POOL_SIZE`] connections before it is
/// dropped as [`StoreError::Busy`]. Past saturation, requests would otherwise queue for
/// seconds and be answered after their clients gave up (perfdhcp after 1 s; firmware
/// retransmits after 4 s), so that the store did work for nobody and served fewer clients
/// than it could: two overloaded servers on one database answered 110 DORA/s each, against
/// 980/s for one server below saturation. A request that gets a connection within this time
/// is still answered in time.
const BUSY_AFTER: Duration = Duration::from_millis(500);

/// Row states in `pxe_addresses.state` (the SQL spells them as numbers: 0 free, 1 offered,
/// 2 bound, 3 declined).
const OFFERED: i16 = 1;
const BOUND: i16 = 2;

/// The schema, one step per version: a database at version N gets steps N+1… in one
/// transaction.
const MIGRATIONS: &[&str] = &[
    // 1: addresses, reservations, and a view of the leases in force for operators.
    "CREATE TABLE pxe_addresses (
        ip        inet PRIMARY KEY,
        mac       text UNIQUE,
        client_id bytea,
        state     smallint NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 3),
        expires   timestamptz NOT NULL DEFAULT 'epoch',
        server    text,
        CHECK (mac IS NOT NULL OR state IN (0, 3))
    );
    CREATE INDEX pxe_addresses_by_expiry ON pxe_addresses (expires, ip);
    CREATE TABLE pxe_reservations (
        ip        inet PRIMARY KEY,
        mac       text UNIQUE,
        client_id bytea UNIQUE,
        host_name text,
        CHECK (mac IS NOT NULL OR client_id IS NOT NULL)
    );
    CREATE VIEW pxe_leases AS
        SELECT ip, mac, client_id, expires, server FROM pxe_addresses
        WHERE state = 2 AND expires > now();",
];

/// An arbitrary key for the advisory lock that serialises schema set-up between servers.
const SCHEMA_LOCK: i64 = 0x7078_655f_6c65_6173;

/// A connection string that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("lease store URL: {0}")]
pub struct ConfigError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Leases in PostgreSQL (see the crate documentation).
pub struct PostgresStore {
    pool: Pool,
    /// Where the database is, for log lines (no password).
    target: String,
    subnets: Vec<Subnet>,
    reservations: Vec<Reservation>,
    offer_hold: Duration,
    server_name: String,
    timeout: Duration,
    /// Set once the schema, the pools' rows and the reservations are in place.
    prepared: OnceCell<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store for the pools of `subnets` in the database at `url` (a `postgres://` URL or a
    /// `key=value` connection string; `host=/run/postgresql` for a Unix socket). Nothing is
    /// connected yet: the first call (or [`Self::wait_until_ready`]) connects and sets up the
    /// schema.
    pub fn new(url: &str, subnets: Vec<Subnet>) -> Result<Self, ConfigError> {
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| ConfigError(Box::new(e)))?;
        if config.get_connect_timeout().is_none() {
            // A database host that does not answer must not hold a request for minutes.
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("pxe-dhcp");
        }
        let target = describe(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(BUSY_AFTER))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| ConfigError(Box::new(e)))?;
        Ok(Self {
            pool,
            target,
            subnets,
            reservations: Vec::new(),
            offer_hold: DEFAULT_OFFER_HOLD,
            server_name: hostname(),
            timeout: Duration::from_secs(10),
            prepared: OnceCell::new(),
        })
    }

    /// Reservations written to the database at start (replacing any row for the same
    /// address). Others may be added to `pxe_reservations` with SQL at any time.
    #[must_use]
    pub fn reservations(mut self, reservations: Vec<Reservation>) -> Self {
        self.reservations = reservations;
        self
    }

    /// How long an offered address is held (default [`DEFAULT_OFFER_HOLD`]).
    #[must_use]
    pub fn offer_hold(mut self, hold: Duration) -> Self {
        self.offer_hold = hold;
        self
    }

    /// The name recorded in `pxe_addresses.server` for the leases this server grants
    /// (default: the host name).
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// The name recorded for the leases this server grants.
    pub fn name(&self) -> &str {
        &self.server_name
    }

    /// Where the store connects (host or socket, port, database, user; never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Connects and sets up the schema, retrying every two seconds until the database
    /// answers: the first failure is logged at `warn` with the reason, later ones at
    /// `debug`, and success at `info`.
    pub async fn wait_until_ready(&self) {
        let mut warned = false;
        loop {
            match self.ready().await {
                Ok(()) => {
                    tracing::info!(database = %self.target, "lease store ready");
                    return;
                }
                Err(e) if !warned => {
                    tracing::warn!(database = %self.target, error = %e, "waiting for the lease database; retrying every 2 s");
                    warned = true;
                }
                Err(e) => {
                    tracing::debug!(database = %self.target, error = %e, "lease database still unreachable")
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Makes sure the schema, pool rows and reservations are in place (once).
    async fn ready(&self) -> Result<(), StoreError> {
        self.prepared
            .get_or_try_init(|| self.prepare())
            .await
            .map(|_| ())
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await.map_err(unavailable)?;
        let tx = conn.transaction().await.map_err(unavailable)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(unavailable)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS pxe_schema (version integer NOT NULL)")
            .await
            .map_err(unavailable)?;
        let version: i32 = tx
            .query_opt("SELECT version FROM pxe_schema", &[])
            .await
            .map_err(unavailable)?
            .map_or(0, |row| row.get(0));
        let current = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        if version > current {
            return Err(unavailable(format!(
                "the database's lease schema is version {version}, newer than this server's {current}"
            )));
        }
        for step in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
            tx.batch_execute(step).await.map_err(unavailable)?;
        }
        if version != current {
            tx.execute("DELETE FROM pxe_schema", &[])
                .await
                .map_err(unavailable)?;
            tx.execute("INSERT INTO pxe_schema (version) VALUES ($1)", &[&current])
                .await
                .map_err(unavailable)?;
            tracing::info!(database = %self.target, from = version, to = current, "lease schema set up");
        }
        for subnet in &self.subnets {
            // One row per pool address, skipping the network and broadcast addresses.
            let start = u32::from(subnet.pool_start);
            let count = i64::from(u32::from(subnet.pool_end).saturating_sub(start)) + 1;
            tx.execute(
                "INSERT INTO pxe_addresses (ip)
                 SELECT $1::inet + g FROM generate_series(0::bigint, $2::bigint - 1) g
                 WHERE $1::inet + g NOT IN ($3::inet, $4::inet)
                 ON CONFLICT (ip) DO NOTHING",
                &[
                    &inet(subnet.pool_start),
                    &count,
                    &inet(subnet.network),
                    &inet(subnet.broadcast()),
                ],
            )
            .await
            .map_err(unavailable)?;
        }
        for reservation in &self.reservations {
            tx.execute(
                "INSERT INTO pxe_reservations (ip, mac, client_id, host_name)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (ip) DO UPDATE SET mac = EXCLUDED.mac,
                     client_id = EXCLUDED.client_id, host_name = EXCLUDED.host_name",
                &[
                    &inet(reservation.ip),
                    &reservation.mac.map(|mac| mac.to_string()),
                    &reservation.client_id,
                    &reservation.host_name,
                ],
            )
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    /// Runs `attempt` (one transaction) until it does not lose a race, at most [`ATTEMPTS`]
    /// times, within the store's time limit.
    async fn run<T, F, Fut>(&self, attempt: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, DbError>>,
    {
        let work = async {
            self.ready().await?;
            let mut tries = 0;
            loop {
                tries += 1;
                match attempt().await {
                    Err(e) if tries < ATTEMPTS && lost_race(&e) => {
                        tracing::debug!(error = %e, "lease transaction lost a race; again");
                    }
                    Err(DbError::Pool(PoolError::Timeout(TimeoutType::Wait))) => {
                        return Err(StoreError::Busy(
                            format!(
                                "no database connection free within {} ms",
                                BUSY_AFTER.as_millis()
                            )
                            .into(),
                        ))
                    }
                    result => return result.map_err(unavailable),
                }
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(format!(
                    "no answer from the database within {} s",
                    self.timeout.as_secs()
                )))
            })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        Ok(self.pool.get().await?)
    }

    async fn try_offer(
        &self,
        subnet: &Subnet,
        client: LeaseClient<'_>,
        requested: Option<Ipv4Addr>,
        now: SystemTime,
    ) -> Result<Option<Assignment>, DbError> {
        let mut conn = self.client().await?;
        let tx = conn.transaction().await?;
        let mac = client.mac.to_string();
        let hold_until = now + self.offer_hold;
        // Both questions in one round trip (tokio-postgres pipelines queries polled together).
        let own_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&mac];
        let (reservation, own) = tokio::try_join!(
            reservation_of(&tx, client),
            query_opt(
                &tx,
                "SELECT ip, state, expires FROM pxe_addresses WHERE mac = $1",
                &own_params,
            ),
        )?;
        if let Some(reservation) = reservation {
            let offer = subnet.contains(reservation.ip).then(|| {
                Assignment::new(
                    lease(client.mac, reservation.ip, hold_until),
                    reservation.host_name,
                )
            });
            return Ok(offer);
        }
        if let Some(row) = own {
            let ip = ipv4(&row, 0);
            let state: i16 = row.get(1);
            let expires: SystemTime = row.get(2);
            if in_pool(subnet, ip) {
                if state == BOUND && expires > now {
                    // A DISCOVER never shortens a binding.
                    return Ok(Some(Assignment::new(lease(client.mac, ip, expires), None)));
                }
                // Held again as an offer, unless the other server has bound it to this
                // client meanwhile (its REQUEST committed after the SELECT above): a DISCOVER
                // never turns a binding back into an offer. Decided on the locked row.
                let held = query_opt(
                    &tx,
                    "UPDATE pxe_addresses SET
                             state = CASE WHEN state = 2 AND expires > $6 THEN 2::smallint
                                          ELSE $3 END,
                             expires = CASE WHEN state = 2 AND expires > $6 THEN expires
                                            ELSE $4 END,
                             server = CASE WHEN state = 2 AND expires > $6 THEN server
                                           ELSE $5 END
                         WHERE ip = $1 AND mac = $2
                         RETURNING expires",
                    &[
                        &inet(ip),
                        &mac,
                        &OFFERED,
                        &hold_until,
                        &self.server_name,
                        &now,
                    ],
                )
                .await?;
                if let Some(row) = held {
                    let until: SystemTime = row.get(0);
                    tx.commit().await?;
                    return Ok(Some(Assignment::new(lease(client.mac, ip, until), None)));
                }
            }
            // The client moves to this pool: its old address goes back (a client holds one).
            release_other(&tx, &mac, None, now).await?;
        }
        let set = "UPDATE pxe_addresses SET mac = $1, client_id = $2, state = 1, expires = $3,
                   server = $4";
        let mut taken = None;
        if let Some(ip) = requested.filter(|ip| in_pool(subnet, *ip)) {
            taken = query_opt(
                &tx,
                &format!(
                    "{set} WHERE ip = $5 AND expires <= $6
                         AND NOT EXISTS (SELECT 1 FROM pxe_reservations r WHERE r.ip = $5)
                         RETURNING ip"
                ),
                &[
                    &mac,
                    &client.client_id,
                    &hold_until,
                    &self.server_name,
                    &inet(ip),
                    &now,
                ],
            )
            .await?;
        }
        // Never-used addresses (expiry at the epoch) first, then the one that lapsed longest
        // ago; only in a pool with none of those, the oldest pending offer (an offer is not
        // a promise: the REQUEST is checked). Two queries, not one with `OR state = 1`: a
        // row another server offered a moment ago must fail the re-check PostgreSQL makes on
        // the row it locks, or a fresh offer would be taken from its client.
        for candidates in [
            "a.expires <= $7",
            "a.state = 1 AND $7::timestamptz IS NOT NULL",
        ] {
            if taken.is_some() {
                break;
            }
            taken = query_opt(
                &tx,
                &format!(
                    "{set} WHERE ip = (
                            SELECT a.ip FROM pxe_addresses a
                            WHERE a.ip BETWEEN $5 AND $6 AND {candidates}
                              AND NOT EXISTS (SELECT 1 FROM pxe_reservations r WHERE r.ip = a.ip)
                            ORDER BY a.expires, a.ip LIMIT 1 FOR UPDATE SKIP LOCKED)
                         RETURNING ip"
                ),
                &[
                    &mac,
                    &client.client_id,
                    &hold_until,
                    &self.server_name,
                    &inet(subnet.pool_start),
                    &inet(subnet.pool_end),
                    &now,
                ],
            )
            .await?;
        }
        let Some(row) = taken else {
            return Ok(None);
        };
        let ip = ipv4(&row, 0);
        tx.commit().await?;
        Ok(Some(Assignment::new(
            lease(client.mac, ip, hold_until),
            None,
        )))
    }

    async fn try_request(
        &self,
        subnet: &Subnet,
        client: LeaseClient<'_>,
        ip: Ipv4Addr,
        now: SystemTime,
    ) -> Result<Result<Assignment, Refusal>, DbError> {
        if !subnet.contains(ip) {
            return Ok(Err(Refusal::WrongSubnet));
        }
        let mut conn = self.client().await?;
        let tx = conn.transaction().await?;
        let mac = client.mac.to_string();
        let expires = now + subnet.lease_time;
        // One round trip for both: a refusal returns without committing, which undoes the
        // release.
        let (reservation, _) = tokio::try_join!(
            reservation_of(&tx, client),
            release_other(&tx, &mac, Some(ip), now),
        )?;
        let host_name = match &reservation {
            Some(reservation) if reservation.ip != ip => return Ok(Err(Refusal::Reserved)),
            Some(reservation) => reservation.host_name.clone(),
            None if !in_pool(subnet, ip) => return Ok(Err(Refusal::WrongSubnet)),
            None => None,
        };
        let bound = if reservation.is_some() {
            execute(
                &tx,
                "INSERT INTO pxe_addresses (ip, mac, client_id, state, expires, server)
                 VALUES ($1, $2, $3, 2, $4, $5)
                 ON CONFLICT (ip) DO UPDATE SET mac = EXCLUDED.mac,
                     client_id = EXCLUDED.client_id, state = 2, expires = EXCLUDED.expires,
                     server = EXCLUDED.server",
                &[
                    &inet(ip),
                    &mac,
                    &client.client_id,
                    &expires,
                    &self.server_name,
                ],
            )
            .await?
        } else {
            // The address is the client's, free, lapsed, or only offered to someone else;
            // re-checked on the locked row, so two servers never both bind it.
            execute(
                &tx,
                "UPDATE pxe_addresses SET mac = $2, client_id = $3, state = 2, expires = $4,
                     server = $5
                 WHERE ip = $1
                   AND ((mac = $2 AND state <> 3) OR expires <= $6 OR state = 1)
                   AND NOT EXISTS (SELECT 1 FROM pxe_reservations r WHERE r.ip = $1)",
                &[
                    &inet(ip),
                    &mac,
                    &client.client_id,
                    &expires,
                    &self.server_name,
                    &now,
                ],
            )
            .await?
        };
        if bound != 1 {
            return Ok(Err(Refusal::InUse));
        }
        tx.commit().await?;
        Ok(Ok(Assignment::new(
            lease(client.mac, ip, expires),
            host_name,
        )))
    }

    async fn lookup(
        &self,
        condition: &str,
        param: &(dyn tokio_postgres::types::ToSql + Sync),
        now: SystemTime,
    ) -> Result<Option<Lease>, DbError> {
        let conn = self.client().await?;
        let row = query_opt(
            &conn,
            &format!(
                "SELECT ip, mac, expires FROM pxe_addresses
                     WHERE {condition} AND state = 2 AND expires > $2"
            ),
            &[param, &now],
        )
        .await?;
        Ok(row.and_then(|row| {
            let mac: String = row.get(1);
            Some(lease(mac.parse().ok()?, ipv4(&row, 0), row.get(2)))
        }))
    }
}

impl LeaseStore for PostgresStore {
    fn offer<'a>(
        &'a self,
        subnet: &'a Subnet,
        client: LeaseClient<'a>,
        requested: Option<Ipv4Addr>,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Assignment>> {
        Box::pin(self.run(move || self.try_offer(subnet, client, requested, now)))
    }

    fn request<'a>(
        &'a self,
        subnet: &'a Subnet,
        client: LeaseClient<'a>,
        ip: Ipv4Addr,
        now: SystemTime,
    ) -> StoreFuture<'a, Result<Assignment, Refusal>> {
        Box::pin(self.run(move || self.try_request(subnet, client, ip, now)))
    }

    fn release(&self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, ()> {
        Box::pin(self.run(move || async move {
            let conn = self.client().await?;
            // The address stays remembered as the client's last one.
            execute(
                &conn,
                "UPDATE pxe_addresses SET state = 0, expires = $3
                 WHERE ip = $1 AND mac = $2 AND state = 2",
                &[&inet(ip), &mac.to_string(), &now],
            )
            .await?;
            Ok(())
        }))
    }

    fn decline(&self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, ()> {
        Box::pin(self.run(move || async move {
            let conn = self.client().await?;
            execute(
                &conn,
                "UPDATE pxe_addresses SET state = 3, mac = NULL, client_id = NULL, expires = $3
                 WHERE ip = $1 AND mac = $2",
                &[&inet(ip), &mac.to_string(), &(now + DECLINE_HOLD)],
            )
            .await?;
            Ok(())
        }))
    }

    fn lease_by_mac(&self, mac: MacAddr, now: SystemTime) -> StoreFuture<'_, Option<Lease>> {
        Box::pin(
            self.run(move || async move { self.lookup("mac = $1", &mac.to_string(), now).await }),
        )
    }

    fn lease_by_client_id<'a>(
        &'a self,
        client_id: &'a [u8],
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(
            self.run(move || async move { self.lookup("client_id = $1", &client_id, now).await }),
        )
    }

    fn lease_by_address(&self, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, Option<Lease>> {
        Box::pin(self.run(move || async move { self.lookup("ip = $1", &inet(ip), now).await }))
    }

    fn reservation<'a>(&'a self, client: LeaseClient<'a>) -> StoreFuture<'a, Option<Reservation>> {
        Box::pin(self.run(move || async move {
            let conn = self.client().await?;
            Ok(reservation_of(&conn, client).await?)
        }))
    }

    /// Counted in the database, so the numbers are the fleet's (every server's leases), not
    /// this server's alone.
    fn pool_usage<'a>(
        &'a self,
        subnet: &'a Subnet,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<pxe_dhcp::lease::PoolUsage>> {
        Box::pin(self.run(move || async move {
            let conn = self.client().await?;
            let statement = conn
                .prepare_cached(
                    "SELECT
                         count(*) FILTER (WHERE a.ip BETWEEN $1 AND $2
                                            AND a.state = 2 AND a.expires > $5),
                         count(*) FILTER (WHERE a.ip BETWEEN $3 AND $4 AND a.expires <= $5
                                            AND NOT EXISTS (SELECT 1 FROM pxe_reservations r
                                                            WHERE r.ip = a.ip))
                     FROM pxe_addresses a
                     WHERE a.ip BETWEEN LEAST($1, $3) AND GREATEST($2, $4)",
                )
                .await?;
            let row = conn
                .query_one(
                    &statement,
                    &[
                        &inet(subnet.network),
                        &inet(subnet.broadcast()),
                        &inet(subnet.pool_start),
                        &inet(subnet.pool_end),
                        &now,
                    ],
                )
                .await?;
            let count = |i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            Ok(Some(pxe_dhcp::lease::PoolUsage::new(count(0), count(1))))
        }))
    }
}

/// The reservation that applies to `client`: by client identifier first (the more specific
/// identity), then by MAC.
async fn reservation_of(
    db: &impl GenericClient,
    client: LeaseClient<'_>,
) -> Result<Option<Reservation>, tokio_postgres::Error> {
    let row = query_opt(
        db,
        "SELECT ip, mac, client_id, host_name FROM pxe_reservations
             WHERE client_id = $1 OR mac = $2
             ORDER BY (client_id IS NOT DISTINCT FROM $1) DESC LIMIT 1",
        &[&client.client_id, &client.mac.to_string()],
    )
    .await?;
    Ok(row.map(|row| {
        let ip = ipv4(&row, 0);
        let mac: Option<String> = row.get(1);
        let client_id: Option<Vec<u8>> = row.get(2);
        let host_name: Option<String> = row.get(3);
        let mut reservation = match (mac.and_then(|mac| mac.parse().ok()), client_id) {
            (Some(mac), _) => Reservation::by_mac(mac, ip),
            (None, client_id) => Reservation::by_client_id(client_id.unwrap_or_default(), ip),
        };
        // Names were checked when written by a server; one added by hand that is not a DNS
        // name is not sent.
        if let Some(name) = host_name {
            if let Ok(named) = reservation.clone().host_name(name) {
                reservation = named;
            }
        }
        reservation
    }))
}

/// Frees every address `mac` holds other than `keep`: a client holds one address.
async fn release_other(
    db: &impl GenericClient,
    mac: &str,
    keep: Option<Ipv4Addr>,
    now: SystemTime,
) -> Result<u64, tokio_postgres::Error> {
    execute(
        db,
        "UPDATE pxe_addresses SET mac = NULL, client_id = NULL, state = 0,
             expires = LEAST(expires, $3)
         WHERE mac = $1 AND ip IS DISTINCT FROM $2",
        &[&mac, &keep.map(inet), &now],
    )
    .await
}

/// `sql` as a statement prepared once per connection (a decision is several statements, and
/// preparing each again would double its round trips to the database).
async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = db.prepare_cached(sql).await?;
    db.query_opt(&statement, params).await
}

/// [`query_opt`] for statements whose row count is the answer.
async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = db.prepare_cached(sql).await?;
    db.execute(&statement, params).await
}

/// What one attempt at a decision can fail with.
#[derive(Debug, thiserror::Error)]
enum DbError {
    #[error(transparent)]
    Query(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A transaction that lost a race with another server's, worth trying again.
fn lost_race(error: &DbError) -> bool {
    let DbError::Query(error) = error else {
        return false;
    };
    matches!(
        error.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn unavailable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Unavailable(error.into())
}

fn in_pool(subnet: &Subnet, ip: Ipv4Addr) -> bool {
    (u32::from(subnet.pool_start)..=u32::from(subnet.pool_end)).contains(&u32::from(ip))
        && ip != subnet.network
        && ip != subnet.broadcast()
}

fn lease(mac: MacAddr, ip: Ipv4Addr, expires: SystemTime) -> Lease {
    Lease { mac, ip, expires }
}

fn inet(ip: Ipv4Addr) -> IpAddr {
    IpAddr::V4(ip)
}

fn ipv4(row: &Row, column: usize) -> Ipv4Addr {
    match row.get::<_, IpAddr>(column) {
        IpAddr::V4(ip) => ip,
        // The store writes only IPv4 addresses; an IPv6 one added by hand matches nothing.
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// Host, port, database and user of `config`, for log lines.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map_or_else(String::new, |host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{} as {}",
        config.get_dbname().unwrap_or("-"),
        config.get_user().unwrap_or("-")
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "pxe-dhcp".to_string())
}
