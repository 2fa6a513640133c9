//! VK Ads' answers as its documentation shows them, read by the connector.

use serde_json::{Value, json};

use super::ops::statistics_rows;

/// https://ads.vk.com/doc/api/info/Statistics — `GET /api/v2/statistics/ad_groups/day.json?
/// id=857683&date_from=2023-12-01&date_to=2023-12-01&metrics=all`, trimmed to `base`; the
/// non-zero values from the same page's v2 example (https://ads.vk.com/en/doc/api/info/Statistics).
const STATISTICS: &str = r#"{
  "items": [
    {
      "id": 857683,
      "rows": [
        { "date": "2023-12-01",
          "base": { "shows": 75881, "clicks": 270, "goals": 0, "spent": "23328.92", "cpm": "307.44",
                    "cpc": "86.4", "cpa": "0", "ctr": 0.355820297571197, "cr": 0,
                    "vk": { "goals": 0, "cpa": 0, "cr": 0 } } }
      ],
      "total": { "base": { "shows": 75881, "clicks": 270, "goals": 0, "spent": "23328.92" } }
    }
  ],
  "total": { "base": { "shows": 75881, "clicks": 270, "goals": 0, "spent": "23328.92" } }
}"#;

#[test]
fn statistics_from_the_documentation_become_rows_with_exact_money() {
    let body: Value = serde_json::from_str(STATISTICS).expect("the documented example");
    let rows = statistics_rows(&body).expect("rows");
    assert_eq!(
        rows,
        vec![
            json!({ "campaign_id": 857683, "day": "2023-12-01", "impressions": 75881, "clicks": 270, "goals": 0, "cost": "23328.92" })
        ]
    );
    assert!(statistics_rows(&json!({ "error": { "code": "ERR_WRONG_ADPLANS", "message": "…" } })).is_err());
}
