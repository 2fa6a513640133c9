//! The adapter against amoCRM's documented shapes: replies copied from the vendor's
//! documentation (the page in each comment), read as the operations read them.

use serde_json::{Value, json};

use super::ops::{bracketed, page_of};

/// GET /api/v4/leads, "Пример ответа" of
/// https://www.amocrm.ru/developers/content/crm_platform/leads-api#leads-list (trimmed to two
/// leads; the `_links.next` of a page that has one).
const LEADS_PAGE: &str = r#"{
    "_page": 1,
    "_links": {
        "self": { "href": "https://example.amocrm.ru/api/v4/leads?limit=2&page=1" },
        "next": { "href": "https://example.amocrm.ru/api/v4/leads?limit=2&page=2" }
    },
    "_embedded": {
        "leads": [
            {
                "id": 19619,
                "name": "Сделка для примера",
                "price": 46333,
                "responsible_user_id": 123321,
                "group_id": 625,
                "status_id": 142,
                "pipeline_id": 1300,
                "loss_reason_id": null,
                "source_id": null,
                "created_by": 321123,
                "updated_by": 321123,
                "created_at": 1453279607,
                "updated_at": 1502193501,
                "closed_at": 1483005931,
                "closest_task_at": null,
                "is_deleted": false,
                "custom_fields_values": null,
                "score": null,
                "account_id": 5135160,
                "_links": { "self": { "href": "https://example.amocrm.ru/api/v4/leads/19619" } },
                "_embedded": { "tags": [], "companies": [] }
            },
            {
                "id": 14460,
                "name": "Сделка для примера 2",
                "price": 655,
                "responsible_user_id": 123321,
                "group_id": 625,
                "status_id": 142,
                "pipeline_id": 1300,
                "loss_reason_id": null,
                "source_id": null,
                "created_by": 321123,
                "updated_by": 321123,
                "created_at": 1453279607,
                "updated_at": 1502193501,
                "closed_at": 1482990864,
                "closest_task_at": null,
                "is_deleted": false,
                "custom_fields_values": null,
                "score": null,
                "account_id": 1351360,
                "_links": { "self": { "href": "https://example.amocrm.ru/api/v4/leads/14460" } },
                "_embedded": { "tags": [], "companies": [] }
            }
        ]
    }
}"#;

#[test]
fn a_documented_page_of_leads_reads_as_items_and_the_next_page() {
    let body: Value = serde_json::from_str(LEADS_PAGE).expect("the documented reply is JSON");
    let page = page_of(&body);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["items"][0]["id"], 19619);
    assert_eq!(page["items"][0]["status_id"], 142, "142 is amoCRM's 'won'");
    assert_eq!(page["next"], "2");
    assert_eq!(page["page"], 1);

    // The last page has no `next`; 204 No Content (no leads at all) is an empty last page.
    let mut last = body.clone();
    last["_links"].as_object_mut().expect("links").remove("next");
    assert_eq!(page_of(&last)["next"], Value::Null);
    assert_eq!(page_of(&Value::Null), json!({ "items": [], "next": null, "page": null }));
}

/// Filters as https://www.amocrm.ru/developers/content/crm_platform/filters-api writes them:
/// `filter[statuses][0][pipeline_id]=…&filter[statuses][0][status_id]=142`,
/// `filter[updated_at][from]=…`.
#[test]
fn filters_become_amocrms_bracketed_query() {
    let mut query = Vec::new();
    bracketed(
        "filter",
        &json!({ "statuses": [{ "pipeline_id": 1300, "status_id": 142 }], "updated_at": { "from": 1502193501 } }),
        &mut query,
    );
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(pairs.contains(&("filter[statuses][0][pipeline_id]", "1300")), "{pairs:?}");
    assert!(pairs.contains(&("filter[statuses][0][status_id]", "142")), "{pairs:?}");
    assert!(pairs.contains(&("filter[updated_at][from]", "1502193501")), "{pairs:?}");
}
