//! `google.protobuf.Struct` / `Value` ⇄ `serde_json`, the one conversion every service uses for
//! application forms. Integral numbers become JSON integers (`12800`, not `12800.0`), so that
//! forms read the same in validation, conditions and what downstream platforms receive.
//! Non-finite numbers (which JSON cannot hold) become `null`.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Value as Json};

/// Largest magnitude below which an integral `f64` is shown as an integer (exact in f64).
const EXACT_INTEGER: f64 = 9.0e15;

/// The fields of `s` as a JSON object; an absent struct is the empty object.
pub fn struct_to_json(s: Option<&Struct>) -> Map<String, Json> {
    s.map(|s| {
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect()
    })
    .unwrap_or_default()
}

/// One protobuf value as JSON.
pub fn value_to_json(v: &Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < EXACT_INTEGER {
                Json::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
            }
        }
        Some(Kind::StructValue(s)) => Json::Object(struct_to_json(Some(s))),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect()),
    }
}

/// A JSON object as a protobuf struct.
pub fn json_to_struct(m: &Map<String, Json>) -> Struct {
    Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// One JSON value as a protobuf value (numbers become `f64`, as protobuf holds them).
pub fn json_to_value(v: &Json) -> Value {
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Json::Object(m) => Kind::StructValue(json_to_struct(m)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_and_keeps_integers_integral() {
        let doc = json!({
            "name": "某某项目",
            "total_investment_wan": 12800,
            "ratio": 0.25,
            "urgent": true,
            "note": null,
            "sites": [{"code": "350102"}, 3],
        });
        let Json::Object(m) = &doc else {
            panic!("object literal")
        };
        let s = json_to_struct(m);
        assert_eq!(Json::Object(struct_to_json(Some(&s))), doc);
        assert_eq!(struct_to_json(None), Map::new());
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let v = Value {
            kind: Some(Kind::NumberValue(f64::INFINITY)),
        };
        assert_eq!(value_to_json(&v), Json::Null);
        assert_eq!(value_to_json(&Value { kind: None }), Json::Null);
    }
}
