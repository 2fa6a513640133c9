//! Yandex Direct's reports service (https://yandex.ru/dev/direct/doc/reports/): a report is
//! asked for, built offline (201/202 with `retryIn`), asked for again under the same
//! `ReportName` until it is ready (200), and arrives as TSV with money in micros.

use std::time::Duration;

use junction_engine::connector::ConnectorError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Direct;
use crate::web::{Call, Expect};

/// How long a report may take to build before the call gives up (retryable).
const MAX_WAIT: Duration = Duration::from_secs(600);

const FIELDS: [&str; 5] = ["Date", "CampaignId", "Impressions", "Clicks", "Cost"];

/// Daily statistics per campaign from `from` to `to` (inclusive): rows `{campaign_id, day,
/// impressions, clicks, cost}`, `cost` a decimal string (from micros, VAT included).
pub(super) async fn campaign_days(
    d: &Direct,
    from: &str,
    to: &str,
    login: Option<&str>,
    trace: Option<&str>,
) -> Result<Vec<Value>, ConnectorError> {
    let mut params = json!({
        "SelectionCriteria": { "DateFrom": from, "DateTo": to },
        "FieldNames": FIELDS,
        "ReportType": "CAMPAIGN_PERFORMANCE_REPORT",
        "DateRangeType": "CUSTOM_DATE",
        "Format": "TSV",
        "IncludeVAT": "YES",
        "IncludeDiscount": "NO",
    });
    // A name is unique per parameter set: the same set gets the same report back.
    let hash = hex::encode(&Sha256::digest(params.to_string().as_bytes())[..6]);
    params["ReportName"] = json!(format!("junction {from} {to} {hash}"));
    let body = json!({ "params": params });
    let mut headers = d.headers(login);
    headers.extend([
        ("processingmode", "auto".to_owned()),
        ("returnmoneyinmicros", "true".to_owned()),
        ("skipreportheader", "true".to_owned()),
        ("skipreportsummary", "true".to_owned()),
    ]);
    let started = tokio::time::Instant::now();
    loop {
        let call = Call {
            body: Some(&body),
            headers: &headers,
            expect: Expect::Text,
            idempotent: true,
            trace_id: trace,
            ..Call::new(reqwest::Method::POST, "/json/v5/reports")
        };
        let reply = d.api.call(&call).await?;
        match reply.status.as_u16() {
            200 => return parse_tsv(reply.body.as_str().unwrap_or_default()),
            201 | 202 => {
                let wait = reply
                    .headers
                    .get("retryin")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(5), Duration::from_secs);
                if started.elapsed() + wait > MAX_WAIT {
                    return Err(ConnectorError::retryable(format!(
                        "the Yandex Direct report {from}..{to} was not ready within {MAX_WAIT:?}"
                    )));
                }
                tracing::debug!(from, to, wait_s = wait.as_secs(), "Yandex Direct is building the report");
                tokio::time::sleep(wait).await;
            }
            other => return Err(ConnectorError::retryable(format!("Yandex Direct's report answered {other}"))),
        }
    }
}

/// The TSV of a report with its column header line (and neither title nor summary).
pub(super) fn parse_tsv(text: &str) -> Result<Vec<Value>, ConnectorError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().map(|h| h.split('\t').collect()).unwrap_or_default();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (Some(date), Some(campaign), Some(shows), Some(clicks), Some(cost)) =
        (column("Date"), column("CampaignId"), column("Impressions"), column("Clicks"), column("Cost"))
    else {
        return Err(ConnectorError::retryable(format!(
            "a Yandex Direct report without the expected columns: {header:?}"
        )));
    };
    let mut rows = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split('\t').collect();
        let cell = |i: usize| cells.get(i).copied().unwrap_or("");
        let number = |i: usize| {
            cell(i)
                .parse::<i64>()
                .map_err(|_| ConnectorError::retryable(format!("a report cell that is not a number: {line}")))
        };
        rows.push(json!({
            "campaign_id": number(campaign)?,
            "day": cell(date),
            "impressions": number(shows)?,
            "clicks": number(clicks)?,
            "cost": from_micros(number(cost)?),
        }));
    }
    Ok(rows)
}

/// Micros as a decimal string: 12_340_000 → "12.34".
fn from_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let fraction = format!("{:06}", m % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { format!("{sign}{}", m / 1_000_000) } else { format!("{sign}{}.{fraction}", m / 1_000_000) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as https://yandex.ru/dev/direct/doc/reports/report-format describes it, with
    /// `skipReportHeader` and `skipReportSummary` (the column names stay).
    #[test]
    fn a_documented_tsv_report_reads_as_rows_with_money_from_micros() {
        let tsv = "Date\tCampaignId\tImpressions\tClicks\tCost\n2026-12-01\t705\t1200\t34\t5612340000\n2026-12-02\t705\t980\t21\t0\n";
        let rows = parse_tsv(tsv).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            json!({ "campaign_id": 705, "day": "2026-12-01", "impressions": 1200, "clicks": 34, "cost": "5612.34" })
        );
        assert_eq!(rows[1]["cost"], "0");
        assert_eq!(from_micros(1), "0.000001");
        assert_eq!(from_micros(-2_500_000), "-2.5");
        assert!(parse_tsv("Date\tClicks\n").is_err());
    }
}
