//! The JSON driver on the case file with known answers, and its error handling.
#![cfg(feature = "json")]

use serde_json::Value;
use stacklab_fred::json::{Summary, run_lines, run_one};

fn run(input: &str, explain: bool) -> (Vec<Value>, Summary) {
    let mut out = Vec::new();
    let s = run_lines(input.as_bytes(), &mut out, explain).unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, s)
}

#[test]
fn case_file_gives_the_known_answers() {
    let (got, summary) = run(include_str!("cases.jsonl"), false);
    let want: Vec<Value> = include_str!("cases.expected.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "case {}", i + 1);
    }
    assert_eq!(summary, Summary { ok: 20, errors: 6 });
}

#[test]
fn overflow_case_values() {
    // Case 1 by hand: #PF on level 1 at FRED_RSP1, exact RIP, RSP, CR2.
    let (got, _) = run(include_str!("cases.jsonl"), false);
    let c = &got[0];
    assert_eq!(c["outcome"], "delivered");
    assert_eq!(c["new_csl"], 1);
    assert_eq!(c["new_rsp"], "0xfffffe000000ffc0");
    assert_eq!(c["frame"][1], "0xffffffff81234567");
    assert_eq!(c["frame"][4], "0xffffc9000000c000");
    assert_eq!(c["frame"][6], "0xffffc9000000bff8");
    assert_eq!(got[1]["outcome"], "double_fault");
    assert_eq!(got[1]["delivered_event"]["vector"], 8);
    assert_eq!(
        got[1]["attempts"][0]["fault"]["address"],
        "0xffffc9000000bfb8"
    );
    // Cases 25 and 26: the nested NMI's legacy frame is the outer one's, word for word in place.
    assert_eq!(got[24]["frame_top"], got[25]["frame_top"]);
    assert_eq!(got[24]["new_rsp"], got[25]["new_rsp"]);
    assert_ne!(got[24]["frame"][0], got[25]["frame"][0]);
}

#[test]
fn errors_name_the_field_and_processing_goes_on() {
    let input = "\n# comment\n{\"op\":\"deliver\",\"rsp\":\"0x10\",\"rip\":-1,\"event\":{\"type\":0,\"vector\":32}}\n\
                 {\"op\":\"deliver\",\"rsp\":\"0x10\",\"rip\":1,\"event\":{\"type\":0,\"vector\":32},\"cpl\":1}\n\
                 {\"op\":\"erets\",\"frame\":[1,2,3]}\n\
                 {\"op\":\"eretu\",\"frame\":[0,4096,\"0x4b\",2,0,\"0x53\",0,0]}\n\
                 {\"op\":\"deliver\",\"rsp\":\"0x10000\",\"rip\":1,\"event\":{\"type\":0,\"vector\":32}}\n";
    let (got, summary) = run(input, false);
    assert_eq!(summary, Summary { ok: 1, errors: 4 });
    assert!(got[0]["error"].as_str().unwrap().contains("field 'rip'"));
    assert_eq!(got[0]["line"], 3);
    assert!(got[1]["error"].as_str().unwrap().contains("field 'cpl'"));
    assert!(
        got[2]["error"]
            .as_str()
            .unwrap()
            .contains("field 'frame': expected 8 values")
    );
    assert!(got[3]["error"].as_str().unwrap().contains("not modelled"));
    assert_eq!(got[4]["outcome"], "delivered");
    // Config 0: no red zone, so the frame sits right under RSP.
    assert_eq!(got[4]["new_rsp"], "0xffc0");
}

#[test]
fn explain_lists_each_rule_with_its_source() {
    let line = include_str!("cases.jsonl")
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap();
    let v = run_one(line, true).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let rules: Vec<&str> = steps.iter().map(|s| s["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "entry-rip",
            "level-stklvls",
            "csl-never-lowered",
            "stack-switch",
            "instruction-length",
            "resume-flag",
            "nested-bit",
            "ss-word",
            "cs-word",
            "event-data",
            "frame-write",
            "after-delivery"
        ]
    );
    assert_eq!(steps[3]["value"], "0xfffffe0000010000");
    assert!(
        steps
            .iter()
            .all(|s| !s["source"].as_str().unwrap().is_empty())
    );
    assert!(
        steps[1]["source"]
            .as_str()
            .unwrap()
            .contains("FRED_EventDelivery")
    );
    assert!(run_one(line, false).unwrap().get("steps").is_none());
}

#[test]
fn numbers_as_integers_hex_or_decimal_strings() {
    let a = run_one(
        r#"{"op":"deliver","rsp":65536,"rip":"4096","event":{"type":"0x0","vector":32}}"#,
        false,
    )
    .unwrap();
    let b = run_one(
        r#"{"op":"deliver","rsp":"0x10000","rip":"0x1000","event":{"type":0,"vector":"0x20"}}"#,
        false,
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a["frame"][1], "0x1000");
}
