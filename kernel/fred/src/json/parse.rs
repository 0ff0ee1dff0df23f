//! Reading the driver's input: field checks, numbers as integers or `"0x…"` strings, events
//! and the interrupted context, each error naming the field.

use std::format;
use std::string::String;
use std::vec::Vec;

use serde_json::{Map, Value};

use crate::event::{Event, EventType};
use crate::msr::{FredConfig, FredMsrs, StackLevels};
use crate::state::{CpuState, KERNEL_CS, KERNEL_SS, LINUX_STAR, USER_CS, USER_SS};

pub(super) fn check_fields(
    obj: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) -> Result<(), String> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("unknown field '{k}' in {what}"));
        }
    }
    Ok(())
}

pub(super) fn parse_num(v: &Value, name: &str) -> Result<u64, String> {
    let bad = || format!("field '{name}': expected an integer or a \"0x…\" string, got {v}");
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                u64::from_str_radix(&h.replace('_', ""), 16)
            } else {
                s.replace('_', "").parse::<u64>()
            };
            r.map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

pub(super) fn num(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    obj.get(name).map(|v| parse_num(v, name)).transpose()
}

pub(super) fn req(obj: &Map<String, Value>, name: &str) -> Result<u64, String> {
    num(obj, name)?.ok_or_else(|| format!("missing field '{name}'"))
}

pub(super) fn bounded(
    obj: &Map<String, Value>,
    name: &str,
    max: u64,
    default: u64,
) -> Result<u64, String> {
    let v = num(obj, name)?.unwrap_or(default);
    if v > max {
        return Err(format!(
            "field '{name}': {v} is out of range (at most {max})"
        ));
    }
    Ok(v)
}

pub(super) fn boolean(obj: &Map<String, Value>, name: &str, default: bool) -> Result<bool, String> {
    match obj.get(name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("field '{name}': expected true or false, got {v}")),
    }
}

pub(super) fn cpl(obj: &Map<String, Value>) -> Result<u8, String> {
    match num(obj, "cpl")?.unwrap_or(0) {
        0 => Ok(0),
        3 => Ok(3),
        v => Err(format!("field 'cpl': {v} is not modelled (0 or 3)")),
    }
}

pub(super) fn array<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Vec<Value>>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(format!("field '{name}': expected an array, got {v}")),
    }
}

pub(super) fn quadwords<const N: usize>(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<[u64; N]>, String> {
    let Some(a) = array(obj, name)? else {
        return Ok(None);
    };
    if a.len() != N {
        return Err(format!(
            "field '{name}': expected {N} values, got {}",
            a.len()
        ));
    }
    let mut out = [0u64; N];
    for (i, v) in a.iter().enumerate() {
        out[i] = parse_num(v, &format!("{name}[{i}]"))?;
    }
    Ok(Some(out))
}

pub(super) const DELIVER_FIELDS: &[&str] = &[
    "op",
    "cpl",
    "csl",
    "rsp",
    "rip",
    "rflags",
    "cs",
    "ss",
    "event",
    "stklvls",
    "config",
    "rsp_msrs",
    "unmapped",
    "star",
    "sti_blocking",
    "wfe",
    "nested_policy",
];

pub(super) fn parse_event(v: &Value) -> Result<Event, String> {
    let e = v
        .as_object()
        .ok_or_else(|| format!("field 'event': expected an object, got {v}"))?;
    check_fields(
        e,
        &["type", "vector", "error_code", "event_data", "ilen"],
        "'event'",
    )?;
    let t = num(e, "type")
        .map_err(|m| m.replace("'type'", "'event.type'"))?
        .ok_or("missing field 'event.type'")?;
    let kind = EventType::from_number(t)
        .ok_or_else(|| format!("field 'event.type': {t} is not an event type (0, 2-7)"))?;
    let named = |n: &str| format!("event.{n}");
    let get = |n: &str| e.get(n).map(|v| parse_num(v, &named(n))).transpose();
    let vector = get("vector")?.ok_or("missing field 'event.vector'")?;
    if vector > 255 {
        return Err(format!(
            "field 'event.vector': {vector} is out of range (at most 255)"
        ));
    }
    let ilen = get("ilen")?.unwrap_or(0);
    if ilen > 15 {
        return Err(format!(
            "field 'event.ilen': {ilen} is out of range (at most 15)"
        ));
    }
    Ok(Event {
        kind,
        vector: vector as u8,
        error_code: get("error_code")?.unwrap_or(0),
        event_data: get("event_data")?.unwrap_or(0),
        ilen: ilen as u8,
    })
}

/// The fields every delivery case shares: the interrupted context, the event, the holes.
pub(super) struct Context {
    pub(super) state: CpuState,
    pub(super) event: Event,
    pub(super) ranges: Vec<(u64, u64)>,
}

pub(super) fn parse_context(
    obj: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) -> Result<Context, String> {
    check_fields(obj, allowed, what)?;
    let cpl = cpl(obj)?;
    let config = FredConfig(num(obj, "config")?.unwrap_or(0));
    let csl = bounded(obj, "csl", 3, config.csl() as u64)? as u8;
    let rsp_msrs = quadwords::<4>(obj, "rsp_msrs")?.unwrap_or([0; 4]);
    let msrs = FredMsrs {
        rsp: rsp_msrs,
        stklvls: StackLevels(num(obj, "stklvls")?.unwrap_or(0)),
        config,
    };
    let rsp = req(obj, "rsp")?;
    let rip = req(obj, "rip")?;
    let mut state = if cpl == 3 {
        CpuState::user(rsp, rip, msrs)
    } else {
        CpuState::kernel(rsp, rip, msrs, csl)
    };
    state.set_csl(csl);
    state.rflags = num(obj, "rflags")?.unwrap_or(2);
    let (dcs, dss) = if cpl == 3 {
        (USER_CS, USER_SS)
    } else {
        (KERNEL_CS, KERNEL_SS)
    };
    state.cs = bounded(obj, "cs", 0xFFFF, dcs as u64)? as u16;
    state.ss = bounded(obj, "ss", 0xFFFF, dss as u64)? as u16;
    state.star = num(obj, "star")?.unwrap_or(LINUX_STAR);
    state.sti_blocking = boolean(obj, "sti_blocking", false)?;
    state.wfe = boolean(obj, "wfe", false)?;
    let event = parse_event(obj.get("event").ok_or("missing field 'event'")?)?;
    let mut ranges = Vec::new();
    if let Some(a) = array(obj, "unmapped")? {
        for (i, r) in a.iter().enumerate() {
            let pair = r
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| format!("field 'unmapped[{i}]': expected [lo, hi], got {r}"))?;
            let lo = parse_num(&pair[0], &format!("unmapped[{i}][0]"))?;
            let hi = parse_num(&pair[1], &format!("unmapped[{i}][1]"))?;
            if lo > hi {
                return Err(format!(
                    "field 'unmapped[{i}]': lo {lo:#x} is above hi {hi:#x}"
                ));
            }
            ranges.push((lo, hi));
        }
    }
    Ok(Context {
        state,
        event,
        ranges,
    })
}
