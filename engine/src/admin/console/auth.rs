//! Who is signed in to the console: the admin token (an `operator`) or a configured user
//! (argon2id password, a role); failed sign-ins throttled per address and per user; sessions
//! kept in this process behind an `HttpOnly`, `SameSite=Strict` cookie; a CSRF token per
//! session that every change must carry.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::{ConsoleRole, ConsoleUser};

/// The session cookie's name.
pub(super) const COOKIE: &str = "junction_console";
/// How long a session lasts from sign-in.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Failed sign-ins allowed per user name, and per address (an office may share one), within
/// [`THROTTLE_WINDOW`].
const FAILURES_PER_USER: usize = 5;
const FAILURES_PER_ADDRESS: usize = 20;
const THROTTLE_WINDOW: Duration = Duration::from_secs(300);
/// A hash no password matches, verified for unknown names so they take as long as known ones.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$Mr5ZybsPUWBC0Ubc6P1YQaT3O6jKcLr5FZTv6b7nZ9I";

/// A signed-in admin.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub user: String,
    pub role: ConsoleRole,
    /// `admin_token` or `password`: how they proved who they are (the audit log's `actor_kind`).
    pub proof: &'static str,
    /// The token every change of this session carries (form field `csrf` or `X-CSRF-Token`).
    pub csrf: String,
    expires: Instant,
}

/// Why a sign-in did not sign anyone in.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Wrong name, password or token.
    Wrong,
    /// Too many failures from this address or for this name: try again after the wait.
    Throttled(Duration),
}

pub(super) struct Auth {
    token_hash: [u8; 32],
    users: Vec<ConsoleUser>,
    /// Sessions by the SHA-256 of their cookie value.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Auth {
    pub(super) fn new(token_hash: [u8; 32], users: Vec<ConsoleUser>) -> Self {
        Self { token_hash, users, sessions: Mutex::default(), failures: Mutex::default() }
    }

    /// Signs in with a user name and password, or (no name) the admin token; answers the new
    /// session's cookie value.
    pub(super) async fn sign_in(&self, peer: IpAddr, name: &str, secret: &str) -> Result<(String, Session), Refused> {
        let name = name.trim();
        let keys = [format!("addr:{peer}"), format!("user:{name}")];
        if let Some(wait) = self.throttled(&keys) {
            return Err(Refused::Throttled(wait));
        }
        let who = if name.is_empty() {
            let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
            (presented == self.token_hash).then(|| ("admin".to_owned(), ConsoleRole::Operator, "admin_token"))
        } else {
            let user = self.users.iter().find(|u| u.name == name);
            let hash = user.map_or(DECOY_HASH, |u| u.password_hash.as_str()).to_owned();
            let secret = secret.to_owned();
            let ok = tokio::task::spawn_blocking(move || crate::config::password::verify(&secret, &hash))
                .await
                .unwrap_or(false);
            user.filter(|_| ok).map(|u| (u.name.clone(), u.role, "password"))
        };
        let Some((user, role, proof)) = who else {
            self.failed(&keys);
            return Err(Refused::Wrong);
        };
        self.forget_failures(&keys);
        let cookie = random_hex();
        let session = Session { user, role, proof, csrf: random_hex(), expires: Instant::now() + SESSION_TTL };
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > Instant::now());
        sessions.insert(digest(&cookie), session.clone());
        Ok((cookie, session))
    }

    /// The session a cookie value names, while it lasts.
    pub(super) fn session(&self, cookie: &str) -> Option<Session> {
        let sessions = lock(&self.sessions);
        sessions.get(&digest(cookie)).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub(super) fn sign_out(&self, cookie: &str) {
        lock(&self.sessions).remove(&digest(cookie));
    }

    /// How long until a sign-in for any of `keys` may be tried again, if one is throttled.
    fn throttled(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        keys.iter()
            .filter_map(|k| {
                let times = failures.get_mut(k)?;
                while times.front().is_some_and(|t| now.duration_since(*t) >= THROTTLE_WINDOW) {
                    times.pop_front();
                }
                let limit = if k.starts_with("addr:") { FAILURES_PER_ADDRESS } else { FAILURES_PER_USER };
                (times.len() >= limit).then(|| THROTTLE_WINDOW - now.duration_since(times[times.len() - limit]))
            })
            .max()
    }

    fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        if failures.len() > 10_000 {
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < THROTTLE_WINDOW));
        }
        for k in keys {
            failures.entry(k.clone()).or_default().push_back(now);
        }
    }

    fn forget_failures(&self, keys: &[String]) {
        let mut failures = lock(&self.failures);
        for k in keys {
            failures.remove(k);
        }
    }
}

/// Whether `presented` is the session's CSRF token (compared by hash, in constant time's
/// spirit: equal-length digests).
pub(super) fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| digest(p) == digest(&session.csrf))
}

/// The `Set-Cookie` value for a new session (`secure`: behind TLS).
pub(super) fn cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends the session in the browser.
pub(super) fn cookie_cleared(secure: bool) -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

/// The session cookie's value in a `Cookie` header.
pub(super) fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').filter_map(|p| p.trim().split_once('=')).find(|(k, _)| *k == COOKIE).map(|(_, v)| v)
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let users = vec![ConsoleUser {
            name: "ana".into(),
            password_hash: crate::config::password::hash("ana's long password"),
            role: ConsoleRole::Viewer,
        }];
        Auth::new(Sha256::digest(b"the-admin-token").into(), users)
    }

    #[tokio::test]
    async fn the_token_signs_in_an_operator_and_a_password_its_user() {
        let auth = auth();
        let peer: IpAddr = "127.0.0.1".parse().expect("ip");
        let (cookie, s) = auth.sign_in(peer, "", "the-admin-token").await.expect("token");
        assert_eq!((s.user.as_str(), s.role, s.proof), ("admin", ConsoleRole::Operator, "admin_token"));
        assert_eq!(auth.session(&cookie).map(|s| s.user), Some("admin".into()));
        let (_, s) = auth.sign_in(peer, "ana", "ana's long password").await.expect("password");
        assert_eq!((s.user.as_str(), s.role), ("ana", ConsoleRole::Viewer));
        assert_eq!(auth.sign_in(peer, "ana", "the-admin-token").await.err(), Some(Refused::Wrong));
        assert_eq!(auth.sign_in(peer, "bob", "ana's long password").await.err(), Some(Refused::Wrong));
        auth.sign_out(&cookie);
        assert!(auth.session(&cookie).is_none());
        assert!(csrf_ok(&s, Some(&s.csrf)));
        assert!(!csrf_ok(&s, Some("guess")));
        assert!(!csrf_ok(&s, None));
    }

    #[tokio::test]
    async fn failures_throttle_the_name_after_five_and_the_address_after_twenty() {
        let auth = auth();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        for _ in 0..FAILURES_PER_USER {
            assert_eq!(auth.sign_in(a, "ana", "wrong").await.err(), Some(Refused::Wrong));
        }
        // Even the right password waits, from any address.
        assert!(matches!(auth.sign_in(a, "ana", "ana's long password").await, Err(Refused::Throttled(_))));
        assert!(matches!(auth.sign_in(b, "ana", "ana's long password").await, Err(Refused::Throttled(_))));
        // The address itself may still sign in others, until it has failed twenty times.
        for n in FAILURES_PER_USER..FAILURES_PER_ADDRESS {
            assert_eq!(auth.sign_in(a, &format!("user-{n}"), "wrong").await.err(), Some(Refused::Wrong));
        }
        match auth.sign_in(a, "", "the-admin-token").await {
            Err(Refused::Throttled(wait)) => assert!(wait <= THROTTLE_WINDOW && wait > THROTTLE_WINDOW / 2),
            other => panic!("the address is throttled, not {other:?}"),
        }
        assert!(auth.sign_in(b, "", "the-admin-token").await.is_ok());
        check_hash_of_the_decoy();
    }

    fn check_hash_of_the_decoy() {
        crate::config::password::check_hash(DECOY_HASH).expect("the decoy is a well-formed argon2id hash");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_tls() {
        assert_eq!(
            cookie("abc", false),
            "junction_console=abc; Path=/console; HttpOnly; SameSite=Strict; Max-Age=28800"
        );
        assert!(cookie("abc", true).ends_with("; Secure"));
        assert_eq!(cookie_value("a=1; junction_console=xyz; b=2"), Some("xyz"));
        assert_eq!(cookie_value("a=1"), None);
    }
}
