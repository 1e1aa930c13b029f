//! Link flags and generated code for the preload library.
//!
//! Every process of a deployment loads libforkguard.so, so its load cost is
//! a product feature:
//! - the unwinder that std references (`_Unwind_*`) is linked in statically
//!   from libgcc_eh instead of loading libgcc_s.so.1 in every process (with
//!   `panic = "abort"` it only serves backtraces);
//! - relative relocations are packed (DT_RELR);
//! - libc functions are bound lazily through trampolines generated here from
//!   `src/os/lazy_imports.txt` (see `src/os/lazy.rs`).
use std::fmt::Write as _;

fn main() {
    println!(
        "cargo:rustc-link-arg-cdylib=-Wl,--push-state,--whole-archive,-l:libgcc_eh.a,--pop-state"
    );
    println!("cargo:rustc-link-arg-cdylib=-Wl,--as-needed");
    println!("cargo:rustc-link-arg-cdylib=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/os/lazy_imports.txt");

    let list = std::fs::read_to_string("src/os/lazy_imports.txt").expect("src/os/lazy_imports.txt");
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");

    // The trampolines, their first-call stubs, the common resolver entry,
    // and the slot table (AT&T syntax; `{resolve}` is a sym operand).
    //
    // `.text.fg_hot` also holds `fork` and the engine's post-fork code (their
    // `#[link_section]`): a child faults in each page of code it runs, in
    // whole 64 KiB windows (the kernel's fault-around), so the section
    // starts on a 64 KiB boundary and stays one window.
    let mut s = String::from(".pushsection .text.fg_hot,\"ax\",@progbits\n.p2align 16\n");
    for (i, n) in names.iter().enumerate() {
        writeln!(s, ".weak {n}\n.hidden {n}\n.type {n},@function\n.p2align 3\n{n}:\n  jmp *fg_lazy_slots+{}(%rip)\n.size {n}, .-{n}", 8 * i).unwrap();
    }
    for i in 0..names.len() {
        writeln!(
            s,
            ".p2align 3\nfg_lazy_stub_{i}:\n  movl ${i}, %r11d\n  jmp fg_lazy_common"
        )
        .unwrap();
    }
    // Save every argument register (integer, vector, and %al for varargs),
    // resolve, restore, and jump to the real function as if called directly.
    s.push_str(
        "fg_lazy_common:
  pushq %rbp
  movq %rsp, %rbp
  andq $-16, %rsp
  subq $208, %rsp
  movq %rdi, 0(%rsp)
  movq %rsi, 8(%rsp)
  movq %rdx, 16(%rsp)
  movq %rcx, 24(%rsp)
  movq %r8, 32(%rsp)
  movq %r9, 40(%rsp)
  movq %rax, 48(%rsp)
  movq %r10, 56(%rsp)
  movdqa %xmm0, 64(%rsp)
  movdqa %xmm1, 80(%rsp)
  movdqa %xmm2, 96(%rsp)
  movdqa %xmm3, 112(%rsp)
  movdqa %xmm4, 128(%rsp)
  movdqa %xmm5, 144(%rsp)
  movdqa %xmm6, 160(%rsp)
  movdqa %xmm7, 176(%rsp)
  movl %r11d, %edi
  call {resolve}
  movq %rax, %r11
  movq 0(%rsp), %rdi
  movq 8(%rsp), %rsi
  movq 16(%rsp), %rdx
  movq 24(%rsp), %rcx
  movq 32(%rsp), %r8
  movq 40(%rsp), %r9
  movq 48(%rsp), %rax
  movq 56(%rsp), %r10
  movdqa 64(%rsp), %xmm0
  movdqa 80(%rsp), %xmm1
  movdqa 96(%rsp), %xmm2
  movdqa 112(%rsp), %xmm3
  movdqa 128(%rsp), %xmm4
  movdqa 144(%rsp), %xmm5
  movdqa 160(%rsp), %xmm6
  movdqa 176(%rsp), %xmm7
  movq %rbp, %rsp
  popq %rbp
  jmp *%r11
.popsection
.pushsection .data.fg_lazy,\"aw\",@progbits
.globl fg_lazy_slots
.hidden fg_lazy_slots
.p2align 3
fg_lazy_slots:
",
    );
    for i in 0..names.len() {
        writeln!(s, "  .quad fg_lazy_stub_{i}").unwrap();
    }
    s.push_str(".popsection\n");
    s.push_str(MEM_FUNCTIONS);
    std::fs::write(format!("{out}/lazy.s"), s).expect("write lazy.s");

    let mut r = format!(
        "/// The lazily bound functions, by slot.\npub const NAMES: [&core::ffi::CStr; {}] = [\n",
        names.len()
    );
    for n in &names {
        writeln!(r, "    c\"{n}\",").unwrap();
    }
    r.push_str("];\n");
    std::fs::write(format!("{out}/lazy_names.rs"), r).expect("write lazy_names.rs");
}

/// memcpy, memmove, memset, memcmp, bcmp and strlen, defined in the library
/// (hidden) rather than bound to libc's: the compiler calls them from
/// everywhere, including the load-time path of a process with no config,
/// where binding each one cost about 770 instructions (`dlsym`), more than
/// the library's whole use of them. `rep movsq`/`rep stosq` (then the
/// remaining bytes) are fast on current x86_64; the comparisons are byte
/// loops, over the short strings and keys of a config. `memmove` copies
/// forwards with `memcpy` when that is safe (destination below the source),
/// else backwards byte by byte. Written in assembly so that the compiler can
/// never turn them into calls to themselves.
const MEM_FUNCTIONS: &str = "
.pushsection .text.fg_hot,\"ax\",@progbits
.globl memcpy
.hidden memcpy
.type memcpy,@function
.p2align 4
memcpy:
  movq %rdi, %rax
  movq %rdx, %rcx
  shrq $3, %rcx
  rep movsq
  movq %rdx, %rcx
  andq $7, %rcx
  rep movsb
  ret
.size memcpy, .-memcpy

.globl memmove
.hidden memmove
.type memmove,@function
.p2align 4
memmove:
  cmpq %rsi, %rdi
  jbe memcpy
  movq %rdi, %rax
  movq %rdx, %rcx
  leaq -1(%rsi,%rdx), %rsi
  leaq -1(%rdi,%rdx), %rdi
  std
  rep movsb
  cld
  ret
.size memmove, .-memmove

.globl memset
.hidden memset
.type memset,@function
.p2align 4
memset:
  movq %rdi, %r9
  movzbl %sil, %eax
  movabsq $0x0101010101010101, %r8
  imulq %r8, %rax
  movq %rdx, %rcx
  shrq $3, %rcx
  rep stosq
  movq %rdx, %rcx
  andq $7, %rcx
  rep stosb
  movq %r9, %rax
  ret
.size memset, .-memset

.globl memcmp
.hidden memcmp
.type memcmp,@function
.globl bcmp
.hidden bcmp
.type bcmp,@function
.p2align 4
memcmp:
bcmp:
  xorl %eax, %eax
1:
  testq %rdx, %rdx
  je 2f
  movzbl (%rdi), %eax
  movzbl (%rsi), %ecx
  subl %ecx, %eax
  jne 2f
  incq %rdi
  incq %rsi
  decq %rdx
  jmp 1b
2:
  ret
.size memcmp, .-memcmp
.size bcmp, .-bcmp

.globl strlen
.hidden strlen
.type strlen,@function
.p2align 4
strlen:
  movq %rdi, %rax
1:
  cmpb $0, (%rax)
  je 2f
  incq %rax
  jmp 1b
2:
  subq %rdi, %rax
  ret
.size strlen, .-strlen
.popsection
";
