//! The objects mapped in a process (from `/proc/PID/maps` and their ELF
//! program headers, read from the first 64 KiB of each file): which object an address lies in, and at which
//! link-time address, `.bss` beyond the file's pages included.

use super::procfs::{Mapping, Process};
use forkguard_core::debugfile::build_id_in_notes;
use std::io::Read;

/// One object (program or library) mapped from a file.
#[derive(Debug, Clone)]
pub struct Object {
    /// The path in `/proc/PID/maps`.
    pub path: String,
    /// What to open to read it (the path, or `map_files/` when deleted).
    pub open_path: String,
    /// Its base name, as SPEC 8.4 names objects (`libc.so.6`, `myprog`).
    pub name: String,
    /// Runtime address = bias + link-time address.
    pub bias: u64,
    /// `(link-time vaddr, memsz)` of each `PT_LOAD`.
    loads: Vec<(u64, u64)>,
    /// The file on disk is the object in memory: `None` when its build-id
    /// could not be compared, `Some(false)` when they differ.
    pub same_file: Option<bool>,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

impl Object {
    /// The link-time address of runtime address `addr`, when it lies in
    /// one of this object's segments.
    pub fn vaddr(&self, addr: u64) -> Option<u64> {
        let v = addr.checked_sub(self.bias)?;
        self.loads
            .iter()
            .any(|&(s, m)| v >= s && v < s.saturating_add(m))
            .then_some(v)
    }
}

#[cfg(test)]
impl Object {
    /// An object at bias 0 whose every address is in a segment.
    pub fn for_tests(path: &str) -> Object {
        Object {
            path: path.to_string(),
            open_path: path.to_string(),
            name: path.rsplit('/').next().unwrap_or(path).to_string(),
            bias: 0,
            loads: vec![(0, u64::MAX)],
            same_file: None,
            error: None,
        }
    }
}

/// Every file-backed object of a process.
#[derive(Debug, Default)]
pub struct Objects {
    pub list: Vec<Object>,
}

impl Objects {
    /// Reads the ELF headers of each file mapped in `maps` (once per path).
    pub fn new(proc: &Process, maps: &[Mapping]) -> Objects {
        let mut list: Vec<Object> = Vec::new();
        for m in maps.iter().filter(|m| m.is_file()) {
            if list.iter().any(|o| o.path == m.path) {
                continue;
            }
            // Paths are the process's: through its root (a container's
            // files), else as they are here.
            let in_root = format!("/proc/{}/root{}", proc.pid, m.path);
            let open_path = match m.path.strip_suffix(" (deleted)") {
                Some(_) => format!("/proc/{}/map_files/{:x}-{:x}", proc.pid, m.start, m.end),
                None if std::fs::File::open(&in_root).is_ok() => in_root,
                None => m.path.clone(),
            };
            let name = m
                .path
                .trim_end_matches(" (deleted)")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            let mut o = Object {
                path: m.path.clone(),
                open_path,
                name,
                bias: 0,
                loads: Vec::new(),
                same_file: None,
                error: None,
            };
            if let Err(e) = read_headers(&mut o, proc, m) {
                o.error = Some(e);
            }
            list.push(o);
        }
        Objects { list }
    }

    /// The object `addr` lies in and the link-time address there.
    pub fn at(&self, addr: u64) -> Option<(&Object, u64)> {
        self.list.iter().find_map(|o| o.vaddr(addr).map(|v| (o, v)))
    }
}

/// The start of an ELF file: its header and program headers (which
/// linkers put right after it), without reading a large file whole.
const HEAD_BYTES: u64 = 64 * 1024;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

fn u16_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?).into())
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// One program header: `(type, file offset, vaddr, filesz, memsz)`.
type Phdr = (u32, u64, u64, u64, u64);

/// The program headers of a 64-bit little-endian ELF file from its first bytes.
fn program_headers(head: &[u8]) -> Option<Vec<Phdr>> {
    if !head.starts_with(b"\x7fELF") || head.get(4) != Some(&2) || head.get(5) != Some(&1) {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        u64_at(head, 0x20)?,
        u16_at(head, 0x36)?,
        u16_at(head, 0x38)?,
    );
    (0..phnum)
        .map(|i| {
            let o = usize::try_from(phoff.checked_add(i * phentsize)?).ok()?;
            Some((
                u32_at(head, o)?,
                u64_at(head, o + 8)?,
                u64_at(head, o + 16)?,
                u64_at(head, o + 32)?,
                u64_at(head, o + 40)?,
            ))
        })
        .collect()
}

/// Fills in the bias and segments from the file's program headers, using
/// `first` (the object's first mapping) to place it, and compares the
/// build-id note with the one in memory.
fn read_headers(o: &mut Object, proc: &Process, first: &Mapping) -> Result<(), String> {
    let file = std::fs::File::open(&o.open_path)
        .map_err(|e| format!("{}: {}", o.path, crate::launch::strip_os(&e)))?;
    let mut head = Vec::new();
    file.take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| format!("{}: {}", o.path, crate::launch::strip_os(&e)))?;
    let phdrs =
        program_headers(&head).ok_or_else(|| format!("{}: not a 64-bit ELF file", o.path))?;
    let mut place = None;
    for &(kind, off, vaddr, filesz, memsz) in &phdrs {
        if kind != PT_LOAD {
            continue;
        }
        o.loads.push((vaddr, memsz));
        // The segment whose file range holds the mapping's offset gives the
        // link-time address of the mapping's start.
        let page_off = off & !0xfff;
        if place.is_none() && first.offset >= page_off && first.offset < off + filesz.max(1) {
            place = Some((vaddr & !0xfff) + (first.offset - page_off));
        }
    }
    let start_vaddr =
        place.ok_or_else(|| format!("{}: no segment at its mapped offset", o.path))?;
    o.bias = first.start.wrapping_sub(start_vaddr);
    // The build-id note, in the file's first bytes and in memory.
    for &(kind, off, vaddr, filesz, _) in &phdrs {
        let Some(id) = (kind == PT_NOTE)
            .then(|| head.get(off as usize..off.saturating_add(filesz) as usize))
            .flatten()
            .and_then(build_id_in_notes)
        else {
            continue;
        };
        if let Ok(mem) = proc.read(o.bias.wrapping_add(vaddr), filesz.min(4096) as usize) {
            o.same_file = Some(build_id_in_notes(&mem) == Some(id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::program_headers;

    #[test]
    fn headers_of_this_program() {
        let exe = std::fs::read("/proc/self/exe").expect("read self");
        let ph = program_headers(&exe[..exe.len().min(64 * 1024)]).expect("ELF");
        assert!(ph.iter().any(|p| p.0 == super::PT_LOAD));
        assert!(program_headers(b"#!/bin/sh\n").is_none());
        // A header whose program headers lie past the bytes read.
        let mut cut = exe[..64].to_vec();
        cut[0x20..0x28].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert!(program_headers(&cut).is_none());
    }
}
