//! A CRM deal checked as `schemas/crm-deal.json` checks it, and mapped to the master deal
//! as `transforms/crm_deal_to_master_deal.rhai` maps it, so both sides reply the same JSON.

use std::borrow::Cow;
use std::fmt;

use hyper::StatusCode;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::date_time::is_date_time;

/// Why a body was turned away; the status says whose fault it is and how.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// Not JSON at all: 400.
    Malformed(serde_json::Error),
    /// JSON, but not a CRM deal (a field missing or of the wrong type): 422.
    Shape(serde_json::Error),
    /// A CRM deal whose field breaks a rule of the schema: 422.
    Rule { field: &'static str, rule: &'static str },
}

impl Rejection {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Rejection::Malformed(_) => StatusCode::BAD_REQUEST,
            Rejection::Shape(_) | Rejection::Rule { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(e) => write!(f, "the body is not JSON: {e}"),
            Rejection::Shape(e) => write!(f, "the body is not a CRM deal: {e}"),
            Rejection::Rule { field, rule } => write!(f, "{field} must be {rule}"),
        }
    }
}

/// Reads a CRM deal and returns its master deal as JSON bytes.
pub(crate) fn preview(body: &[u8]) -> Result<Vec<u8>, Rejection> {
    let deal: CrmDeal<'_> = serde_json::from_slice(body)
        .map_err(|e| if e.is_data() { Rejection::Shape(e) } else { Rejection::Malformed(e) })?;
    deal.check()?;
    let master = MasterDeal::from(&deal);
    Ok(serde_json::to_vec(&master).expect("a master deal always serializes"))
}

/// Strings borrow from the body unless they hold escapes. Optional fields may be absent but
/// not null, as in the schema; unknown fields are allowed, as in the schema.
#[derive(Deserialize)]
struct CrmDeal<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(borrow)]
    client: Client<'a>,
    amount: Num,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    #[serde(borrow)]
    stage: Cow<'a, str>,
    #[serde(borrow)]
    items: Vec<Item<'a>>,
    #[serde(default, deserialize_with = "present")]
    owner: Option<Text<'a>>,
    #[serde(default, deserialize_with = "present")]
    created_at: Option<Text<'a>>,
    // Typed so that the types are checked; nothing reads them.
    #[serde(default, rename = "tags", deserialize_with = "present")]
    _tags: Option<Vec<Text<'a>>>,
    #[serde(default, rename = "comment", deserialize_with = "present")]
    _comment: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Client<'a> {
    #[serde(borrow)]
    inn: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, deserialize_with = "present")]
    kpp: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow, rename = "platform")]
    _platform: Cow<'a, str>,
    budget: Num,
}

/// A borrowed-when-possible string for `Option` fields, where `#[serde(borrow)]` cannot go.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl CrmDeal<'_> {
    /// The schema's rules beyond types.
    fn check(&self) -> Result<(), Rejection> {
        let inn = &self.client.inn;
        let inn_ok = matches!(inn.len(), 10 | 12) && inn.bytes().all(|c| c.is_ascii_digit());
        rule(inn_ok, "/client/inn", "10 or 12 digits")?;
        let currency_ok = self.currency.len() == 3 && self.currency.bytes().all(|c| c.is_ascii_uppercase());
        rule(currency_ok, "/currency", "3 uppercase letters")?;
        rule(!self.amount.is_negative(), "/amount", "≥ 0")?;
        let budgets_ok = self.items.iter().all(|item| !item.budget.is_negative());
        rule(budgets_ok, "/items/*/budget", "≥ 0")?;
        let created_ok = self.created_at.as_ref().is_none_or(|t| is_date_time(&t.0));
        rule(created_ok, "/created_at", "an RFC 3339 date-time")
    }
}

fn rule(ok: bool, field: &'static str, rule: &'static str) -> Result<(), Rejection> {
    if ok { Ok(()) } else { Err(Rejection::Rule { field, rule }) }
}

#[derive(Serialize)]
struct MasterDeal<'d> {
    external_id: String,
    name: &'d str,
    advertiser: Advertiser<'d>,
    owner: Option<&'d str>,
    amount: Num,
    currency: &'d str,
    budget: Num,
    status: &'static str,
    channels: Vec<&'d str>,
    source: &'static str,
}

#[derive(Serialize)]
struct Advertiser<'d> {
    name: &'d str,
    inn: &'d str,
    kpp: Option<&'d str>,
}

impl<'d> From<&'d CrmDeal<'_>> for MasterDeal<'d> {
    fn from(deal: &'d CrmDeal<'_>) -> Self {
        let mut budget = Num::Int(0);
        let mut channels: Vec<&str> = Vec::with_capacity(deal.items.len());
        for item in &deal.items {
            budget = budget + item.budget;
            if !channels.contains(&&*item.channel) {
                channels.push(&item.channel);
            }
        }
        MasterDeal {
            external_id: format!("crm:{}", deal.id),
            name: &deal.title,
            advertiser: Advertiser {
                name: &deal.client.name,
                inn: &deal.client.inn,
                kpp: deal.client.kpp.as_ref().map(|t| &*t.0),
            },
            owner: deal.owner.as_ref().map(|t| &*t.0),
            amount: deal.amount,
            currency: &deal.currency,
            budget,
            status: match &*deal.stage {
                "won" => "signed",
                "lost" => "cancelled",
                _ => "draft",
            },
            channels,
            source: "crm",
        }
    }
}

/// A JSON number as the Rhai side holds it: an integer while it fits `i64`, a float
/// otherwise, so that sums and pass-throughs print the same on both sides.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn is_negative(self) -> bool {
        match self {
            Num::Int(n) => n < 0,
            Num::Float(x) => x < 0.0,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(n) => n as f64,
            Num::Float(x) => x,
        }
    }
}

/// `INT + INT` stays an integer, anything with a float is a float; Rhai would fail on an
/// overflowing integer sum where this goes on in floating point.
impl std::ops::Add for Num {
    type Output = Num;

    fn add(self, other: Num) -> Num {
        if let (Num::Int(a), Num::Int(b)) = (self, other)
            && let Some(sum) = a.checked_add(b)
        {
            return Num::Int(sum);
        }
        Num::Float(self.as_f64() + other.as_f64())
    }
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Num::Int(n) => s.serialize_i64(n),
            Num::Float(x) => s.serialize_f64(x),
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

struct NumVisitor;

impl Visitor<'_> for NumVisitor {
    type Value = Num;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Num, E> {
        Ok(Num::Int(n))
    }

    /// Past `i64`, Rhai keeps the number as a FLOAT: so does this.
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Num, E> {
        Ok(i64::try_from(n).map_or(Num::Float(n as f64), Num::Int))
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Num, E> {
        Ok(Num::Float(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deal.json` of the benchmark.
    const DEAL: &str = r#"{"id":"D-100245","title":"Spring campaign 2027 / Romashka LLC","client":{"inn":"7701234567","name":"Romashka LLC","kpp":"770101001"},"amount":1250000.5,"currency":"RUB","stage":"won","owner":"ivanov@agency.example","created_at":"2026-11-20T10:15:00Z","items":[{"channel":"search","platform":"yandex_direct","budget":400000},{"channel":"social","platform":"vk_ads","budget":300000},{"channel":"video","platform":"youtube","budget":250000},{"channel":"display","platform":"mytarget","budget":200000.5},{"channel":"audio","platform":"yandex_music","budget":100000}],"tags":["q2","priority","new-client"],"comment":"Client asked for a media plan with weekly flighting and brand safety filters; KPI: CPM under 350 RUB and CTR above 0.8%."}"#;

    fn master(body: &str) -> serde_json::Value {
        let bytes = preview(body.as_bytes()).expect("a valid deal");
        serde_json::from_slice(&bytes).expect("the reply is JSON")
    }

    #[test]
    fn maps_the_bench_deal() {
        let expected = serde_json::json!({
            "external_id": "crm:D-100245",
            "name": "Spring campaign 2027 / Romashka LLC",
            "advertiser": {"name": "Romashka LLC", "inn": "7701234567", "kpp": "770101001"},
            "owner": "ivanov@agency.example",
            "amount": 1_250_000.5,
            "currency": "RUB",
            "budget": 1_250_000.5,
            "status": "signed",
            "channels": ["search", "social", "video", "display", "audio"],
            "source": "crm"
        });
        assert_eq!(master(DEAL), expected);
    }

    #[test]
    fn integer_budgets_sum_to_an_integer_and_channels_are_unique() {
        let body = r#"{"id":"1","title":"t","client":{"inn":"123456789012","name":"n"},
            "amount":10,"currency":"EUR","stage":"open","items":[
            {"channel":"tv","platform":"a","budget":2},{"channel":"tv","platform":"b","budget":3}]}"#;
        let m = master(body);
        assert_eq!(m["budget"], serde_json::json!(5));
        assert_eq!(m["amount"], serde_json::json!(10));
        assert_eq!(m["channels"], serde_json::json!(["tv"]));
        assert_eq!(m["status"], "draft");
        assert!(m["owner"].is_null() && m["advertiser"]["kpp"].is_null());
    }

    #[test]
    fn bad_bodies_are_rejected_with_the_right_status() {
        let invalid = |from: &str, to: &str| (DEAL.replace(from, to), StatusCode::UNPROCESSABLE_ENTITY);
        let cases = [
            ("{not json".to_owned(), StatusCode::BAD_REQUEST),
            (r#"{"id":"1"}"#.to_owned(), StatusCode::UNPROCESSABLE_ENTITY),
            invalid(r#""7701234567""#, r#""77012""#),
            invalid(r#""RUB""#, r#""rub""#),
            invalid(r#""budget":400000"#, r#""budget":-1"#),
            invalid(r#""won""#, "7"),
            invalid(r#""ivanov@agency.example""#, "null"),
            invalid("2026-11-20T10:15:00Z", "soon"),
        ];
        for (body, status) in cases {
            let rejection = preview(body.as_bytes()).expect_err(&body);
            assert_eq!(rejection.status(), status, "{body}: {rejection}");
        }
    }
}
