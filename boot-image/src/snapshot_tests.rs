//! Host tests of the snapshot cache's keying, its checks and the fallback rule.

use super::*;

fn key(image: &str) -> Key {
    Key::new(vec![
        ("kernel image", image.into()),
        ("QEMU version", "QEMU emulator version 7.2.22".into()),
        ("machine arguments", "-machine q35 -m 512M".into()),
    ])
}

fn meta_for(k: &Key, data: &[u8]) -> String {
    meta_json(
        k,
        data.len() as u64,
        checksum(data).unwrap(),
        Duration::from_millis(5250),
    )
}

#[test]
fn a_state_matching_its_key_length_and_checksum_is_used() {
    let data = b"QEVM state bytes, not a multiple of eight".to_vec();
    let k = key("00aa");
    let meta = meta_for(&k, &data);
    let v: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(v["made_secs"], json!(5.3));
    assert_eq!(v["key"]["kernel image"], json!("00aa"));
    assert_eq!(
        check(&k, Some(&meta), Some(data.len() as u64), || Ok(checksum(
            &data[..]
        )
        .unwrap())),
        Ok(())
    );
}

#[test]
fn a_changed_part_of_the_key_makes_the_state_stale_and_names_the_part() {
    let data = vec![7u8; 100];
    let meta = meta_for(&key("00aa"), &data);
    let len = Some(data.len() as u64);
    let never = || -> Result<u64, String> { panic!("no checksum for a stale state") };
    assert_eq!(
        check(&key("00bb"), Some(&meta), len, never),
        Err("it is stale (the kernel image changed)".into())
    );
    let other_qemu = Key::new(vec![
        ("kernel image", "00aa".into()),
        ("QEMU version", "QEMU emulator version 8.2.0".into()),
        ("machine arguments", "-machine q35 -m 512M".into()),
    ]);
    assert_eq!(
        check(&other_qemu, Some(&meta), len, never),
        Err("it is stale (the QEMU version changed)".into())
    );
    let more = Key::new(
        key("00aa")
            .parts
            .into_iter()
            .chain([("host CPU", "x".to_string())])
            .collect(),
    );
    assert_eq!(
        check(&more, Some(&meta), len, never),
        Err("it is stale (the host CPU changed)".into())
    );
    let fewer = Key::new(key("00aa").parts[..2].to_vec());
    assert_eq!(
        check(&fewer, Some(&meta), len, never),
        Err("it is stale (the format changed)".into())
    );
}

#[test]
fn damage_is_corruption_and_absence_is_said() {
    let data = vec![1u8; 4096];
    let k = key("00aa");
    let meta = meta_for(&k, &data);
    let mut flipped = data.clone();
    flipped[4000] ^= 0x40;
    assert_eq!(
        check(&k, Some(&meta), Some(4096), || Ok(
            checksum(&flipped[..]).unwrap()
        )),
        Err("it is corrupt (its checksum differs from the one recorded)".into())
    );
    assert_eq!(
        check(&k, Some(&meta), Some(4095), || Ok(0)),
        Err("it is corrupt (its length differs from the one recorded)".into())
    );
    assert!(
        check(&k, Some("{ not json"), Some(4096), || Ok(0))
            .unwrap_err()
            .starts_with("it is corrupt (its metadata is not JSON")
    );
    assert_eq!(
        check(&k, None, Some(4096), || Ok(0)),
        Err("there is none yet".into())
    );
    assert_eq!(
        check(&k, Some(&meta), None, || Ok(0)),
        Err("there is none yet".into())
    );
}

#[test]
fn the_checksum_sees_every_byte_and_chunk_boundaries_do_not_matter() {
    let big: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i * 31 % 251) as u8).collect();
    let whole = checksum(&big[..]).unwrap();
    // A reader that returns 1000 bytes at a time gives the same sum.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1000).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    assert_eq!(checksum(Trickle(&big)).unwrap(), whole);
    for i in [0, 7, 8, 1 << 20, big.len() - 1] {
        let mut b = big.clone();
        b[i] ^= 1;
        assert_ne!(checksum(&b[..]).unwrap(), whole, "byte {i}");
    }
    assert_ne!(checksum(&big[..big.len() - 1]).unwrap(), whole);
}

#[test]
fn the_fallback_rule() {
    let ok: Result<PathBuf, String> = Ok("/s/tcg-512M.state".into());
    let bad: Result<PathBuf, String> = Err("making it failed: migration failed".into());
    assert_eq!(decide(BootChoice::Cold, &ok).unwrap(), Start::Cold(None));
    assert_eq!(decide(BootChoice::Cold, &bad).unwrap(), Start::Cold(None));
    assert_eq!(
        decide(BootChoice::Auto, &ok).unwrap(),
        Start::Snapshot("/s/tcg-512M.state".into())
    );
    assert_eq!(
        decide(BootChoice::Snapshot, &ok).unwrap(),
        Start::Snapshot("/s/tcg-512M.state".into())
    );
    assert_eq!(
        decide(BootChoice::Auto, &bad).unwrap(),
        Start::Cold(Some(
            "no snapshot start (making it failed: migration failed); cold boot".into()
        ))
    );
    let e = decide(BootChoice::Snapshot, &bad).unwrap_err();
    assert_eq!(e.exit_status(), 7);
    assert_eq!(
        e.msg,
        "cannot start from a snapshot: making it failed: migration failed (use --boot cold or auto)"
    );
}

#[test]
fn boot_choices_parse_and_kinds_replay_as_themselves() {
    for c in [BootChoice::Auto, BootChoice::Cold, BootChoice::Snapshot] {
        assert_eq!(c.name().parse::<BootChoice>().unwrap(), c);
    }
    assert_eq!(
        "warm".parse::<BootChoice>().unwrap_err().msg,
        "--boot must be cold, snapshot or auto, got 'warm'"
    );
    assert_eq!(BootKind::Cold.choice(), BootChoice::Cold);
    assert_eq!(BootKind::Snapshot.choice(), BootChoice::Snapshot);
}

#[test]
fn state_files_are_per_accelerator_and_memory() {
    let d = Path::new("/t/snapshots");
    assert_eq!(
        state_path(d, Accel::Tcg, 512),
        Path::new("/t/snapshots/tcg-512M.state")
    );
    assert_eq!(
        meta_path(&state_path(d, Accel::Kvm, 4096)),
        Path::new("/t/snapshots/kvm-4096M.json")
    );
}
