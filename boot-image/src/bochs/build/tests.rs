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
