use super::*;
use std::time::SystemTime;

/// A fake Bochs source tree at `dir`: what `find_root` looks for.
fn fake_root(dir: &Path) {
    fs::create_dir_all(dir.join("cpu")).unwrap();
    fs::write(dir.join("configure"), "#!/bin/sh\n").unwrap();
    fs::write(dir.join("bochs.h"), "").unwrap();
}

#[test]
fn directories_and_tar_archives_are_told_apart() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        Source::detect(d.path()).unwrap(),
        Source::Tree(d.path().to_path_buf())
    );
    for name in ["b.tar.xz", "B.TAR.GZ", "b.tgz", "b.tar", "b.tar.bz2"] {
        let f = d.path().join(name);
        fs::write(&f, "").unwrap();
        assert_eq!(Source::detect(&f).unwrap(), Source::Tarball(f), "{name}");
    }
    let zip = d.path().join("b.zip");
    fs::write(&zip, "").unwrap();
    let e = Source::detect(&zip).unwrap_err();
    assert_eq!(e.exit_status(), 2);
    assert!(
        e.msg.contains("not a directory and not a tar archive"),
        "{}",
        e.msg
    );
    let e = Source::detect(&d.path().join("missing")).unwrap_err();
    assert_eq!(e.exit_status(), 2);
    assert!(e.msg.contains("missing: No such file"), "{}", e.msg);
}

#[test]
fn the_source_root_is_found_up_to_two_levels_down() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(find_root(d.path()), None);
    // The archive's layout: bochs-src/{bochs,bochs-testing}/, sources in bochs/.
    let deep = d.path().join("bochs-src").join("bochs");
    fs::create_dir_all(d.path().join("bochs-src").join("bochs-testing")).unwrap();
    fake_root(&deep);
    assert_eq!(find_root(d.path()), Some(deep.clone()));
    assert_eq!(find_root(&d.path().join("bochs-src")), Some(deep.clone()));
    assert_eq!(find_root(&deep), Some(deep.clone()));
    // Without bochs.h it is some other project's configure.
    fs::remove_file(deep.join("bochs.h")).unwrap();
    assert_eq!(find_root(d.path()), None);
}

#[test]
fn the_key_changes_with_the_tarball_and_not_without() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("b.tar.xz");
    fs::write(&t, "one").unwrap();
    let src = Source::Tarball(t.clone());
    let k1 = source_key(&src).unwrap();
    assert_eq!(source_key(&src).unwrap(), k1, "same file, same key");
    assert!(k1.contains(&CONFIGURE_FLAGS.join(" ")), "{k1}");
    assert!(
        k1.contains(&fs::canonicalize(&t).unwrap().display().to_string()),
        "{k1}"
    );
    fs::write(&t, "other content").unwrap();
    assert_ne!(source_key(&src).unwrap(), k1, "new size");
    let k2 = source_key(&src).unwrap();
    let f = fs::File::options().write(true).open(&t).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    assert_ne!(source_key(&src).unwrap(), k2, "new time");
}

#[test]
fn a_tree_key_follows_its_newest_file() {
    let d = tempfile::tempdir().unwrap();
    fake_root(d.path());
    let src = Source::Tree(d.path().to_path_buf());
    let k1 = source_key(&src).unwrap();
    assert_eq!(source_key(&src).unwrap(), k1);
    let f = d.path().join("cpu").join("fred.cc");
    fs::write(&f, "").unwrap();
    fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    assert_ne!(source_key(&src).unwrap(), k1);
    assert!(
        source_key(&src)
            .unwrap()
            .starts_with("stacklab-bochs-build 1\ntree ")
    );
}

/// A fake Bochs source whose `configure` writes a Makefile that "builds" a `bochs` script and
/// counts its builds in `<root>/../../builds` (outside the tree: a file in it would change the
/// tree's key); with `fail`, configure fails like a missing compiler.
fn fake_bochs(root: &Path, fail: bool) {
    fake_root(root);
    for (dir, file) in [("OVMF", OVMF_NAME), ("VGABIOS-lgpl", VGA_ROM_NAME)] {
        fs::create_dir_all(root.join("bios").join(dir)).unwrap();
        fs::write(root.join("bios").join(dir).join(file), file).unwrap();
    }
    let script = if fail {
        "echo 'checking for gcc... no'\necho 'configure: error: no acceptable C compiler found in $PATH' >&2\nexit 1\n".to_string()
    } else {
        format!(
            "echo \"flags: $*\"\nprintf 'all:\\n\\techo built >> {}\\n\\tprintf \"#!/bin/sh\\\\n\" > bochs\\n' > Makefile\n",
            root.join("../../builds").display()
        )
    };
    fs::write(root.join("configure"), script).unwrap();
}

#[test]
fn a_build_is_made_once_per_source_and_keeps_its_logs() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("repo").join("bochs");
    fake_bochs(&src, false);
    let out = Layout::new(d.path().join("out"));
    build_into(&d.path().join("repo"), &out).unwrap();
    assert!(out.binary().is_file());
    assert_eq!(fs::read_to_string(out.firmware()).unwrap(), OVMF_NAME);
    assert_eq!(fs::read_to_string(out.vga_rom()).unwrap(), VGA_ROM_NAME);
    let log = fs::read_to_string(out.log("configure")).unwrap();
    assert_eq!(log.trim(), format!("flags: {}", CONFIGURE_FLAGS.join(" ")));
    assert_eq!(
        fs::read_to_string(d.path().join("builds")).unwrap(),
        "built\n"
    );
    assert!(out.built_from().unwrap().starts_with("tree "));
    // The same source again: nothing is rebuilt.
    build_into(&d.path().join("repo"), &out).unwrap();
    assert_eq!(
        fs::read_to_string(d.path().join("builds")).unwrap(),
        "built\n"
    );
    // A changed source file: built again.
    let f = src.join("cpu").join("new.cc");
    fs::write(&f, "").unwrap();
    fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(120))
        .unwrap();
    build_into(&d.path().join("repo"), &out).unwrap();
    assert_eq!(
        fs::read_to_string(d.path().join("builds")).unwrap(),
        "built\nbuilt\n"
    );
}

#[test]
fn a_tarball_is_extracted_and_built_from_its_sources() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("t");
    fake_bochs(&tree.join("bochs-src").join("bochs"), false);
    let tarball = d.path().join("bochs-test.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .arg("bochs-src")
        .status()
        .unwrap();
    assert!(st.success());
    let out = Layout::new(d.path().join("out"));
    build_into(&tarball, &out).unwrap();
    assert!(out.binary().is_file());
    assert!(d.path().join("out/src/bochs-src/bochs/configure").is_file());
    assert!(out.built_from().unwrap().starts_with("tarball "));
    assert!(!d.path().join("out/src.incoming").exists());
}

#[test]
fn a_failed_configure_names_its_log_and_keeps_the_old_build() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good");
    fake_bochs(&good, false);
    let out = Layout::new(d.path().join("out"));
    build_into(&good, &out).unwrap();
    // A directory without Bochs: refused before anything of the old build is touched.
    let empty = d.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let e = build_into(&empty, &out).unwrap_err();
    assert_eq!(e.exit_status(), 2);
    assert!(e.msg.contains("no Bochs sources found"), "{}", e.msg);
    assert!(
        out.built_from().is_some(),
        "the old build is still recorded"
    );
    let bad = d.path().join("bad");
    fake_bochs(&bad, true);
    let e = build_into(&bad, &out).unwrap_err();
    assert_eq!(e.exit_status(), 2);
    let log = out.log("configure");
    assert!(
        e.msg.starts_with(&format!(
            "configure failed (exit status: 1); the whole output is in {}",
            log.display()
        )),
        "{}",
        e.msg
    );
    assert!(
        e.msg.contains("no acceptable C compiler found in $PATH"),
        "{}",
        e.msg
    );
    assert_eq!(out.built_from(), None, "a failed build is not recorded");
}
