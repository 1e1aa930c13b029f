use super::*;

/// A symbol for [`elf`]: name, STT kind, section index, value, size.
type S<'a> = (&'a str, u8, u16, u64, u64);

/// A minimal ELF64 file: null, .symtab, .strtab, .shstrtab, a build-id
/// note and a debuglink, built the way a linker lays them out.
fn elf(
    syms: &[S],
    first_global: u32,
    build_id: Option<&[u8]>,
    link: Option<(&str, u32)>,
) -> Vec<u8> {
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; SYM_SIZE];
    for (name, kind, shndx, value, size) in syms {
        let at = strtab.len() as u32;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        symtab.extend_from_slice(&at.to_le_bytes());
        symtab.push(*kind);
        symtab.push(0);
        symtab.extend_from_slice(&shndx.to_le_bytes());
        symtab.extend_from_slice(&value.to_le_bytes());
        symtab.extend_from_slice(&size.to_le_bytes());
    }
    let mut note = Vec::new();
    if let Some(id) = build_id {
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&(id.len() as u32).to_le_bytes());
        note.extend_from_slice(&NT_GNU_BUILD_ID.to_le_bytes());
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(id);
        while note.len() % 4 != 0 {
            note.push(0);
        }
    }
    let mut dl = Vec::new();
    if let Some((name, crc)) = link {
        dl.extend_from_slice(name.as_bytes());
        dl.push(0);
        while dl.len() % 4 != 0 {
            dl.push(0);
        }
        dl.extend_from_slice(&crc.to_le_bytes());
    }
    let shstr = b"\0.symtab\0.strtab\0.shstrtab\0.note.gnu.build-id\0.gnu_debuglink\0".to_vec();
    // (name offset in shstr, type, data, link, info)
    let sections: Vec<(u32, u32, Vec<u8>, u32, u32)> = vec![
        (0, 0, Vec::new(), 0, 0),
        (1, SHT_SYMTAB, symtab, 2, first_global + 1),
        (9, 3, strtab, 0, 0),
        (17, 3, shstr, 0, 0),
        (27, SHT_NOTE, note, 0, 0),
        (46, 1, dl, 0, 0),
    ];
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    let mut offsets = Vec::new();
    for s in &sections {
        offsets.push(out.len() as u64);
        out.extend_from_slice(&s.2);
    }
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let shoff = out.len() as u64;
    for (i, s) in sections.iter().enumerate() {
        let mut h = vec![0u8; SHDR_SIZE];
        h[0..4].copy_from_slice(&s.0.to_le_bytes());
        h[4..8].copy_from_slice(&s.1.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&offsets[i].to_le_bytes());
        h[0x20..0x28].copy_from_slice(&(s.2.len() as u64).to_le_bytes());
        h[0x28..0x2c].copy_from_slice(&s.3.to_le_bytes());
        h[0x2c..0x30].copy_from_slice(&s.4.to_le_bytes());
        out.extend_from_slice(&h);
    }
    out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    out[0x3a..0x3c].copy_from_slice(&(SHDR_SIZE as u16).to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&(sections.len() as u16).to_le_bytes());
    out[0x3e..0x40].copy_from_slice(&3u16.to_le_bytes());
    out
}

/// Like libc's: two files with a static `lock`, one with a unique name, a
/// hidden global turned local after an empty file symbol, then globals.
fn libc_like(id: &[u8]) -> Vec<u8> {
    let syms: &[S] = &[
        ("random.c", STT_FILE, SHN_ABS, 0, 0),
        ("lock", STT_OBJECT, 20, 0x1000, 4),
        ("random_r_helper", STT_FUNC, 12, 0x500, 32),
        ("stdlib/setenv.c", STT_FILE, SHN_ABS, 0, 0),
        ("envlock", STT_OBJECT, 20, 0x1010, 4),
        ("lock", STT_OBJECT, 20, 0x1014, 4),
        ("", STT_FILE, SHN_ABS, 0, 0),
        ("__exit_funcs_lock", STT_OBJECT, 20, 0x1020, 4),
        ("setenv", STT_FUNC, 12, 0x600, 100),
        ("environ_alias", STT_OBJECT, 20, 0x1030, 8),
        ("environ", STT_OBJECT, 20, 0x1030, 8),
        ("undefined_thing", STT_OBJECT, SHN_UNDEF, 0, 0),
    ];
    elf(syms, 8, Some(id), Some(("libc.so.6.debug", 0)))
}

fn q<'a>(file: Option<&'a str>, name: &'a str) -> Query<'a> {
    Query { file, name }
}

#[test]
fn looks_names_up_with_and_without_file() {
    let data = libc_like(b"\x93\xac\x61");
    let e = Elf::parse(&data).unwrap();
    let t = e.symtab().unwrap().unwrap();
    let r = t.lookup(&[
        q(None, "envlock"),
        q(None, "lock"),
        q(Some("random.c"), "lock"),
        q(Some("setenv.c"), "lock"),
        q(Some("stdlib/setenv.c"), "envlock"),
        q(Some("nosuch.c"), "lock"),
        q(None, "__exit_funcs_lock"),
        q(None, "environ"),
        q(None, "undefined_thing"),
        q(None, "nothing"),
        q(None, "setenv"),
    ]);
    let one = |f: &Found| match f {
        Found::One(h) => h.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(one(&r[0]).value, 0x1010);
    assert_eq!(one(&r[0]).file.as_deref(), Some("stdlib/setenv.c"));
    assert_eq!(
        r[1],
        Found::Ambiguous(vec!["random.c".into(), "stdlib/setenv.c".into()])
    );
    assert_eq!(one(&r[2]).value, 0x1000);
    assert_eq!(one(&r[2]).size, 4);
    assert_eq!(one(&r[3]).value, 0x1014);
    assert_eq!(one(&r[4]).value, 0x1010);
    assert_eq!(r[5], Found::Missing);
    let exit = one(&r[6]);
    assert_eq!((exit.value, exit.file), (0x1020, None));
    assert_eq!(one(&r[7]).value, 0x1030);
    assert_eq!(r[8], Found::Missing);
    assert_eq!(r[9], Found::Missing);
    assert_eq!(one(&r[10]).kind, SymKind::Func);
}

#[test]
fn names_addresses() {
    let data = libc_like(b"\x01\x02");
    let t = Elf::parse(&data).unwrap().symtab().unwrap().unwrap();
    let h = t.at(0x1016).unwrap();
    assert_eq!(
        (h.name.as_str(), h.file.as_deref(), h.offset),
        ("lock", Some("stdlib/setenv.c"), 2)
    );
    let h = t.at(0x1000).unwrap();
    assert_eq!(
        (h.name.as_str(), h.file.as_deref()),
        ("lock", Some("random.c"))
    );
    assert_eq!(t.at(0x1024), None);
    assert_eq!(t.at(0x510).unwrap().name, "random_r_helper");
}

#[test]
fn reads_build_id_and_debuglink() {
    let data = libc_like(b"\xaa\xbb\xcc");
    let e = Elf::parse(&data).unwrap();
    assert_eq!(e.build_id(), Some(&b"\xaa\xbb\xcc"[..]));
    assert_eq!(e.debuglink(), Some(("libc.so.6.debug", 0)));
}

#[test]
fn candidate_paths_in_gdb_order() {
    assert_eq!(
        candidates(
            "/lib/x86_64-linux-gnu/libc.so.6",
            Some(b"\x93\xac\x61\xec"),
            Some("libc.so.6.debug")
        ),
        vec![
            "/usr/lib/debug/.build-id/93/ac61ec.debug",
            "/lib/x86_64-linux-gnu/libc.so.6.debug",
            "/lib/x86_64-linux-gnu/.debug/libc.so.6.debug",
            "/usr/lib/debug/lib/x86_64-linux-gnu/libc.so.6.debug",
        ]
    );
    assert_eq!(
        candidates("prog", None, Some("p.debug")),
        vec!["./p.debug", "./.debug/p.debug"]
    );
    assert!(candidates("/x", Some(b"\x01"), None).is_empty());
}

#[test]
fn locate_takes_the_first_file_with_the_same_build_id() {
    let good = libc_like(b"\x11\x22\x33");
    let other = libc_like(b"\x11\x22\x44");
    let mut corrupt = good.clone();
    corrupt.truncate(100);
    let files = [
        ("/usr/lib/debug/.build-id/11/2233.debug", other.clone()),
        ("/o/x.debug", corrupt),
        ("/o/.debug/x.debug", good.clone()),
    ];
    let open = |p: &str| files.iter().find(|f| f.0 == p).map(|f| f.1.clone());
    let wanted = Wanted {
        build_id: Some(b"\x11\x22\x33"),
        debuglink: Some(("x.debug", 0)),
    };
    match locate("/o/x", wanted, open) {
        Located::Found { path, data } => {
            assert_eq!(path, "/o/.debug/x.debug");
            assert_eq!(data, good);
        }
        Located::NotFound { rejected } => panic!("{rejected:?}"),
    }
    // Without the good one: nothing, and both refusals said.
    let open = |p: &str| files[..2].iter().find(|f| f.0 == p).map(|f| f.1.clone());
    match locate("/o/x", wanted, open) {
        Located::Found { path, .. } => panic!("{path}"),
        Located::NotFound { rejected } => {
            assert_eq!(rejected.len(), 2);
            assert!(
                rejected[0].1.contains("build-id 112244 differs"),
                "{rejected:?}"
            );
            assert!(rejected[1].1.contains("truncated"), "{rejected:?}");
        }
    }
}

#[test]
fn without_build_id_the_crc_decides() {
    let syms: &[S] = &[("x", STT_OBJECT, 3, 8, 8)];
    let file = elf(syms, 1, None, None);
    let crc = crc32(&file);
    let w = |crc| Wanted {
        build_id: None,
        debuglink: Some(("p.debug", crc)),
    };
    assert!(check(&file, w(crc)).is_ok());
    assert!(check(&file, w(crc ^ 1)).is_err());
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
}

#[test]
fn corrupt_input_is_an_error_never_a_panic() {
    let good = libc_like(b"\x05\x06");
    for n in 0..good.len() {
        let cut = &good[..n];
        if let Ok(e) = Elf::parse(cut) {
            let _ = e.build_id();
            let _ = e.debuglink();
            if let Ok(Some(t)) = e.symtab() {
                let _ = t.lookup(&[q(None, "lock"), q(Some("random.c"), "lock")]);
                let _ = t.at(0x1000);
            }
        }
    }
    // Every byte flipped, one at a time.
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0xff;
        if let Ok(e) = Elf::parse(&bad) {
            let _ = e.build_id();
            if let Ok(Some(t)) = e.symtab() {
                let _ = t.lookup(&[q(None, "envlock")]);
                let _ = t.at(0x1010);
            }
        }
    }
    assert!(Elf::parse(b"").is_err());
    assert!(Elf::parse(&good[..64]).is_err());
    assert!(check(&good[..good.len() - 10], Wanted::default()).is_err());
}

#[test]
fn numbered_statics_and_data_only() {
    let syms: &[S] = &[
        ("getaddrinfo.c", STT_FILE, SHN_ABS, 0, 0),
        ("lock.2", STT_OBJECT, 20, 0x2000, 4),
        ("lockless", STT_OBJECT, 20, 0x2008, 4),
        ("lock", STT_FUNC, 12, 0x700, 10),
        ("a_rather_long_variable_name", STT_OBJECT, 20, 0x2010, 8),
    ];
    let data = elf(syms, 5, Some(b"\x01\x02"), None);
    let t = Elf::parse(&data).unwrap().symtab().unwrap().unwrap();
    let qs = [
        q(Some("getaddrinfo.c"), "lock"),
        q(None, "a_rather_long_variable_name"),
        q(None, "a_rather_long_variable_nam"),
    ];
    let r = t.lookup_data(&qs, true);
    assert!(matches!(&r[0], Found::One(h) if h.value == 0x2000), "{r:?}");
    assert!(matches!(&r[1], Found::One(h) if h.value == 0x2010), "{r:?}");
    assert_eq!(r[2], Found::Missing);
    // Exact names only, every kind: `lock` is the function.
    let r = t.lookup(&[q(None, "lock")]);
    assert!(
        matches!(&r[0], Found::One(h) if h.kind == SymKind::Func),
        "{r:?}"
    );
    // Variables only: no `lock` variable without the number.
    assert_eq!(t.lookup_data(&[q(None, "lock")], false)[0], Found::Missing);
}
