# forkguard's [[python]] hooks (SPEC 8.7), run once per process by
# src/actions/python.rs, in the parent, with the GIL held, inside the prepare
# phase of the first fork that can register them. The library puts into the
# namespace before running this file:
#   _fg_entries  [(phase, kind, value, optional, label), ...] in declared
#                order; kind "call" with value (module, attribute path), or
#                "code" with value the statements
#   _fg_log      _fg_log(phase, ok, failed, errors joined by "\n")
#   _fg_now      1: the prepare entries may run now, at this fork, when it
#                is CPython's own (os.fork and friends: its import lock is
#                held), since CPython ran its `before` hooks already; 0 when
#                the library says not to (CPython 3.13 and later hold the
#                runtime's head lock there)
# and reads back _fg_registered (how many phases got a hook) and
# _fg_ran_prepare. Nothing here may raise into the program.


def _fg_setup(entries, log, now):
    import os
    import sys

    def compiled(label, src):
        try:
            return compile(src, "<forkguard " + label + ">", "exec"), None
        except BaseException as e:  # SyntaxError, ValueError ...
            return None, e

    def one(kind, value, optional, ns):
        if kind == "call":
            module, attrs = value
            # The module the program imported under that name (a second
            # import of the application would create a second engine).
            m = sys.modules.get(module)
            if m is None:
                try:
                    __import__(module)
                except ImportError:
                    # optional: a module that cannot be imported is silent.
                    if optional:
                        return False
                    raise
                m = sys.modules[module]
            target = m
            for a in attrs.split("."):
                target = getattr(target, a)
            target()
        else:
            code, err = value
            if err is not None:
                raise err
            try:
                exec(code, ns)
            except ImportError:
                if optional:
                    return False
                raise
        return True

    def runner(phase, items):
        def run():
            ok = 0
            errors = []
            for label, kind, value, optional, ns in items:
                try:
                    if one(kind, value, optional, ns):
                        ok += 1
                except BaseException as e:
                    errors.append(label + ": " + type(e).__name__ + ": " + str(e))
            try:
                log(phase, ok, len(errors), "\n".join(errors))
            except BaseException:
                pass

        return run

    by_phase = {"prepare": [], "parent": [], "child": []}
    for phase, kind, value, optional, label in entries:
        ns = {"__name__": "__forkguard__", "__builtins__": __builtins__}
        if kind == "code":
            value = compiled(label, value)
        by_phase[phase].append((label, kind, value, optional, ns))
    hooks = {p: runner(p, items) for p, items in by_phase.items() if items}
    os.register_at_fork(
        **{
            key: hooks[p]
            for key, p in (
                ("before", "prepare"),
                ("after_in_parent", "parent"),
                ("after_in_child", "child"),
            )
            if p in hooks
        }
    )
    ran = 0
    import _imp

    if now and "prepare" in hooks and _imp.lock_held():
        hooks["prepare"]()
        ran = 1
    return len(hooks), ran


try:
    _fg_registered, _fg_ran_prepare = _fg_setup(_fg_entries, _fg_log, _fg_now)
except BaseException as _fg_e:
    _fg_registered, _fg_ran_prepare = 0, 0
    try:
        _fg_log("register", 0, 1, "register: " + type(_fg_e).__name__ + ": " + str(_fg_e))
    except BaseException:
        pass
