//! The shipped mappings applied to a realistic canonical document: exact payloads per platform
//! and event, plus the delivery-time failures.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use tongban_platform::{MappingErrorKind, PlatformConfig, load_dir_with_env};

fn platforms() -> HashMap<String, PlatformConfig> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/platforms");
    load_dir_with_env(dir, &|_| None)
        .unwrap()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect()
}

const SUBMITTED_EVENT_ID: &str = "0194f3a2-7c1e-7a30-9b1d-2f6c8e4d5a01";
const DECISION_EVENT_ID: &str = "0194f3a2-9d00-7b11-8c2e-3a7d9f5e6b02";
const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Submitted just after midnight Beijing time (16:30 UTC the day before), so every date field
/// shows whether it was converted to Asia/Shanghai.
fn submitted() -> Value {
    json!({
        "event": { "id": SUBMITTED_EVENT_ID, "type": "application.submitted",
                   "occurred_at": "2026-01-14T16:30:05Z" },
        "application": {
            "id": "app-01JHX3",
            "matter_code": "env.eia.report_form",
            "submit_time": "2026-01-14T16:30:00Z",
            "applicant": { "credit_code": "91350100m000100y43", "name": "松溪县绿源竹木制品有限公司",
                           "region_code": "350724", "credit_class": "B" },
            "form": {
                "project_name": "年产5万立方米竹胶板生产线扩建项目",
                "project_code": "2026-350724-20-03-000123",
                "construction_site": "福建省南平市松溪县郑墩镇工业园区3号地块",
                "site_region": "350724101",
                "industry_code": "c2021",
                "total_investment_wan": 3200,
                "env_investment_wan": 85.5,
                "eia_category": "report_form",
                "construction_nature": "expansion",
                "uses_water_intake": false,
                "occupies_land": true,
                "planned_start_date": "2026-03-01",
                "agency_name": "福建省环境科学研究院"
            },
            "materials": [ { "kind": "eia_report_form", "name": "环境影响报告表.pdf", "sha256": SHA,
                             "size_bytes": 2048000, "uri": "s3://tongban-materials/app-01JHX3/eia.pdf" } ]
        }
    })
}

/// Decided at 01:10 Beijing time on the 20th (17:10 UTC on the 19th).
fn decided(event_type: &str) -> Value {
    let mut doc = submitted();
    doc["event"] = json!({ "id": DECISION_EVENT_ID, "type": event_type,
                           "occurred_at": "2026-01-19T17:10:02Z" });
    doc["approval"] = if event_type == "application.approved" {
        json!({ "decision_number": "松环审〔2026〕12号", "decide_time": "2026-01-19T17:10:00Z",
                "department": "eco_env" })
    } else {
        json!({ "decide_time": "2026-01-19T17:10:00Z", "department": "admin_approval",
                "reason": "选址位于饮用水水源保护区" })
    };
    doc
}

fn apply(p: &PlatformConfig, doc: &Value) -> Value {
    let event_type = doc["event"]["type"].as_str().unwrap();
    assert!(p.accepts(doc), "{} should accept {event_type}", p.id);
    p.mapping.apply(doc, event_type).unwrap()
}

#[test]
fn national_investment_payloads() {
    let all = platforms();
    let p = &all["national_investment"];
    let common = json!({
        "xmdm": "2026-350724-20-03-000123",
        "xmmc": "年产5万立方米竹胶板生产线扩建项目",
        "jsdd": "福建省南平市松溪县郑墩镇工业园区3号地块",
        "xzqhdm": "350724101",
        "hydm": "C2021",
        "ztz": 3200,
        "jsxz": "2",
        "xmdw": { "tyshxydm": "91350100M000100Y43", "dwmc": "松溪县绿源竹木制品有限公司" },
        "spsxmc": "建设项目环境影响报告表审批",
        "sbsj": "2026-01-15 00:30:00",
        "sjly": "tongban"
    });
    let mut expected = common.clone();
    expected["sjbh"] = json!(SUBMITTED_EVENT_ID);
    expected["blzt"] = json!("01");
    assert_eq!(apply(p, &submitted()), expected);

    let mut expected = common;
    expected["sjbh"] = json!(DECISION_EVENT_ID);
    expected["blzt"] = json!("02");
    expected["pfxx"] =
        json!({ "pfwh": "松环审〔2026〕12号", "pfrq": "2026-01-20", "pfjg": "生态环境局" });
    assert_eq!(apply(p, &decided("application.approved")), expected);
}

#[test]
fn eia_payloads() {
    let all = platforms();
    let p = &all["eia"];
    let submitted_payload = json!({
        "xmmc": "年产5万立方米竹胶板生产线扩建项目",
        "xmdm": "2026-350724-20-03-000123",
        "jsdw": { "tyshxydm": "91350100M000100Y43", "dwmc": "松溪县绿源竹木制品有限公司" },
        "jsdd": "福建省南平市松溪县郑墩镇工业园区3号地块",
        "xzqh": "350724101",
        "hylb": "C2021",
        "hpwjlb": "2",
        "xmlx": "02",
        "zje": 3200,
        "hbtz": 85.5,
        "sfqs": "否",
        "sfzd": "是",
        "jhkgrq": "20260301",
        "hpdw": "福建省环境科学研究院",
        "sqsj": "2026-01-15",
        "ly": "tongban"
    });
    assert_eq!(apply(p, &submitted()), submitted_payload);

    let mut approved = submitted_payload;
    approved["pzwh"] = json!("松环审〔2026〕12号");
    approved["pzrq"] = json!("2026-01-20");
    assert_eq!(apply(p, &decided("application.approved")), approved);
}

#[test]
fn pollutant_permit_payload() {
    let all = platforms();
    let p = &all["pollutant_permit"];
    assert!(!p.accepts(&submitted()));
    assert_eq!(
        apply(p, &decided("application.approved")),
        json!({
            "eventId": DECISION_EVENT_ID,
            "enterprise": { "uscc": "91350100M000100Y43", "entName": "松溪县绿源竹木制品有限公司",
                            "regionCode": "350724" },
            "project": {
                "projectName": "年产5万立方米竹胶板生产线扩建项目",
                "projectCode": "2026-350724-20-03-000123",
                "address": "福建省南平市松溪县郑墩镇工业园区3号地块",
                "industryCode": "C2021",
                "totalInvestment": 3200,
                "envInvestment": 85.5,
                "investmentUnit": "10k CNY"
            },
            "eiaApproval": { "docNo": "松环审〔2026〕12号", "approvalDate": "20260120",
                             "category": "REPORT_TABLE", "authority": "ECOLOGY_ENVIRONMENT_BUREAU" },
            "source": "TONGBAN"
        })
    );
}

#[test]
fn provincial_gov_services_payloads() {
    let all = platforms();
    let p = &all["provincial_gov_services"];
    let common = json!({
        "PROJID": "app-01JHX3",
        "SERVICENAME": "建设项目环境影响报告表审批",
        "PROJECTNAME": "年产5万立方米竹胶板生产线扩建项目",
        "PROJECTCODE": "2026-350724-20-03-000123",
        "APPLYERNAME": "松溪县绿源竹木制品有限公司",
        "APPLYERPAGETYPE": "001",
        "APPLYERPAGECODE": "91350100M000100Y43",
        "AREACODE": "350724",
        "INDUSTRYCODE": "C2021",
        "TOTALINVEST": "3200",
        "EIATYPE": "报告表",
        "APPLYDATE": "2026-01-15 00:30:00",
        "ATTACHMENTS": [ { "FILETYPE": "eia_report_form", "FILENAME": "环境影响报告表.pdf",
                           "FILEHASH": SHA, "FILESIZE": 2048000 } ]
    });
    let mut expected = common.clone();
    expected["EVENTID"] = json!(SUBMITTED_EVENT_ID);
    expected["HANDLESTATE"] = json!("1");
    expected["STATEDESC"] = json!("已受理");
    expected["STATETIME"] = json!("2026-01-15 00:30:05");
    assert_eq!(apply(p, &submitted()), expected);

    let mut expected = common.clone();
    expected["EVENTID"] = json!(DECISION_EVENT_ID);
    expected["HANDLESTATE"] = json!("4");
    expected["STATEDESC"] = json!("办结（准予许可）");
    expected["STATETIME"] = json!("2026-01-20 01:10:02");
    expected["RESULT"] =
        json!({ "DOCNO": "松环审〔2026〕12号", "DATE": "2026-01-20", "DEPT": "生态环境局" });
    assert_eq!(apply(p, &decided("application.approved")), expected);

    let mut expected = common;
    expected["EVENTID"] = json!(DECISION_EVENT_ID);
    expected["HANDLESTATE"] = json!("5");
    expected["STATEDESC"] = json!("办结（不予许可）");
    expected["STATETIME"] = json!("2026-01-20 01:10:02");
    expected["RESULT"] = json!({ "DATE": "2026-01-20", "DEPT": "行政审批局",
                                 "REASON": "选址位于饮用水水源保护区" });
    assert_eq!(apply(p, &decided("application.rejected")), expected);
}

#[test]
fn missing_required_source_names_platform_field_and_path() {
    let all = platforms();
    let mut doc = submitted();
    doc["application"]["form"]
        .as_object_mut()
        .unwrap()
        .remove("project_name");
    let err = all["eia"]
        .mapping
        .apply(&doc, "application.submitted")
        .unwrap_err();
    assert_eq!(err.platform, "eia");
    assert_eq!(err.field, "xmmc");
    assert_eq!(err.path, "/application/form/project_name");
    assert_eq!(err.kind, MappingErrorKind::Missing);
    let shown = err.to_string();
    assert!(
        shown.contains("eia")
            && shown.contains("xmmc")
            && shown.contains("/application/form/project_name"),
        "{shown}"
    );

    // Nested target, null counts as absent.
    let mut doc = submitted();
    doc["application"]["applicant"]["credit_code"] = Value::Null;
    let err = all["eia"]
        .mapping
        .apply(&doc, "application.submitted")
        .unwrap_err();
    assert_eq!(err.field, "jsdw.tyshxydm");

    // An approval event without its approval section.
    let mut doc = decided("application.approved");
    doc.as_object_mut().unwrap().remove("approval");
    let err = all["pollutant_permit"]
        .mapping
        .apply(&doc, "application.approved")
        .unwrap_err();
    assert_eq!(err.path, "/approval/decide_time");
}

#[test]
fn optional_sources_are_omitted() {
    let all = platforms();
    let mut doc = submitted();
    let form = doc["application"]["form"].as_object_mut().unwrap();
    for field in ["project_code", "env_investment_wan", "planned_start_date"] {
        form.remove(field);
    }
    form.insert("agency_name".into(), Value::Null);
    let out = all["eia"]
        .mapping
        .apply(&doc, "application.submitted")
        .unwrap();
    for field in ["xmdm", "hbtz", "jhkgrq", "hpdw"] {
        assert!(out.get(field).is_none(), "{field} should be omitted: {out}");
    }
    assert_eq!(out["xmmc"], json!("年产5万立方米竹胶板生产线扩建项目"));
}

#[test]
fn relocation_maps_on_both_platforms_that_take_the_construction_nature() {
    let all = platforms();
    let mut doc = submitted();
    doc["application"]["form"]["construction_nature"] = json!("relocation");
    let eia = all["eia"]
        .mapping
        .apply(&doc, "application.submitted")
        .unwrap();
    assert_eq!(eia["xmlx"], json!("04"));
    let national = all["national_investment"]
        .mapping
        .apply(&doc, "application.submitted")
        .unwrap();
    assert_eq!(national["jsxz"], json!("4"));
}

#[test]
fn code_tables_fail_on_unknown_codes_without_default() {
    let all = platforms();
    let mut doc = submitted();
    // Not a value the shipped form allows (intake would refuse it), so no table has it: the
    // start-up check cannot see it coming, and delivery names platform, field and value.
    doc["application"]["form"]["construction_nature"] = json!("demolition");
    let err = all["eia"]
        .mapping
        .apply(&doc, "application.submitted")
        .unwrap_err();
    assert_eq!(err.platform, "eia");
    assert_eq!(err.field, "xmlx");
    assert_eq!(err.path, "/application/form/construction_nature");
    assert_eq!(
        err.kind,
        MappingErrorKind::Unmapped {
            value: "\"demolition\"".into()
        }
    );
    assert!(err.to_string().contains("demolition"), "{err}");

    // With a default, unknown codes fall back.
    let mut doc = decided("application.approved");
    doc["approval"]["department"] = json!("water");
    let out = all["national_investment"]
        .mapping
        .apply(&doc, "application.approved")
        .unwrap();
    assert_eq!(out["pfxx"]["pfjg"], json!("其他部门"));
}

#[test]
fn dates_are_shown_in_asia_shanghai() {
    let all = platforms();
    let eia = &all["eia"];
    for (submit_time, expected) in [
        ("2026-01-14T15:59:59Z", "2026-01-14"),
        ("2026-01-14T16:00:00Z", "2026-01-15"),
        ("2026-01-14T23:59:59+08:00", "2026-01-14"),
        ("2026-01-15T00:00:00+08:00", "2026-01-15"),
        ("2026-01-14T12:00:00-05:00", "2026-01-15"),
    ] {
        let mut doc = submitted();
        doc["application"]["submit_time"] = json!(submit_time);
        let out = eia.mapping.apply(&doc, "application.submitted").unwrap();
        assert_eq!(out["sqsj"], json!(expected), "{submit_time}");
    }

    let mut doc = submitted();
    doc["application"]["submit_time"] = json!("yesterday");
    let err = eia
        .mapping
        .apply(&doc, "application.submitted")
        .unwrap_err();
    assert_eq!(err.field, "sqsj");
    assert!(matches!(err.kind, MappingErrorKind::Format { .. }), "{err}");
}

#[test]
fn each_maps_array_elements_and_reports_the_element() {
    let all = platforms();
    let p = &all["provincial_gov_services"];
    let mut doc = submitted();
    doc["application"]["materials"] = json!([]);
    let out = p.mapping.apply(&doc, "application.submitted").unwrap();
    assert_eq!(out["ATTACHMENTS"], json!([]));

    let mut doc = submitted();
    doc["application"]["materials"][0]
        .as_object_mut()
        .unwrap()
        .remove("sha256");
    let err = p.mapping.apply(&doc, "application.submitted").unwrap_err();
    assert_eq!(err.field, "ATTACHMENTS[0].FILEHASH");
    assert_eq!(err.path, "/application/materials/0/sha256");
}
