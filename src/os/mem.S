# memcpy, memmove, memset, memcmp, bcmp and strlen, defined in the library
# (hidden) rather than bound to libc's: the compiler calls them from
# everywhere, including the load-time path of a process with no config,
# where binding each one cost about 770 instructions (`dlsym`), more than
# the library's whole use of them. `rep movsq`/`rep stosq` (then the
# remaining bytes) are fast on current x86_64; the comparisons are byte
# loops, over the short strings and keys of a config. `memmove` copies
# forwards with `memcpy` when that is safe (destination below the source),
# else backwards byte by byte. Written in assembly so that the compiler can
# never turn them into calls to themselves.
.pushsection .text.fg_hot,"ax",@progbits
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
