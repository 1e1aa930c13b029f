//! forkguard's JSON log lines (`log_format = "json"`), read with serde_json.
//!
//! `Json` is `serde_json::Value`; [`JsonExt`] adds the two names the tests
//! use that serde_json spells differently (`Json::parse`, `as_arr`).

pub use serde_json::Value as Json;

pub trait JsonExt {
    /// One JSON document (one log line); the error says where it is wrong.
    fn parse(s: &str) -> Result<Json, String>;
    /// The elements of an array.
    fn as_arr(&self) -> Option<&[Json]>;
}

impl JsonExt for Json {
    fn parse(s: &str) -> Result<Json, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    fn as_arr(&self) -> Option<&[Json]> {
        self.as_array().map(Vec::as_slice)
    }
}
