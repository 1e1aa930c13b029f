# The lazy binding stubs' common entry (see lazy.rs), and the head of the
# slot table. build.rs places it after the generated trampolines and stubs
# (.text.fg_hot) and before the generated slots; the resolve operand is a sym
# operand of lazy.rs's global_asm!.
#
# Save every argument register (integer, vector, and %al for varargs),
# resolve, restore, and jump to the real function as if called directly.
fg_lazy_common:
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
.pushsection .data.fg_lazy,"aw",@progbits
.globl fg_lazy_slots
.hidden fg_lazy_slots
.p2align 3
fg_lazy_slots:
