//! Opaque page cursors: the last id of a page, encoded so clients do not build them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::wire::ApiError;

pub(crate) fn encode(last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub(crate) fn decode(cursor: &str) -> Result<Uuid, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::bad_request(format!("cursor `{cursor}` is not one this API gave out")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_junk_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(id)).expect("round trip"), id);
        assert!(decode("not-a-cursor").is_err());
        assert!(decode(&id.to_string()).is_err(), "a raw id is not a cursor");
    }
}
