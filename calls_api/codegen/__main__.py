"""`python -m calls_api.codegen [--check] [--force]`: the engine behind `make generate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calls_api.codegen import stamp


def main(argv: list[str] | None = None) -> int:
    """Generate (or with --check, verify) generated/ from spec/ and templates/."""
    parser = argparse.ArgumentParser(prog="calls-api generate", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail when generated/ differs from what the spec produces",
    )
    parser.add_argument("--force", action="store_true", help="regenerate even when up to date")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project folder")
    args = parser.parse_args(argv)
    return run(args.root.resolve(), check_only=args.check, force=args.force)


def run(root: Path, *, check_only: bool = False, force: bool = False) -> int:
    """The generate command; returns the process exit status."""
    if not check_only and not force and stamp.is_up_to_date(root):
        print("generate: up to date")
        return 0
    # Heavy imports only once there is work to do.
    from calls_api.codegen.pipeline import GenerationError, SpecError, check, generate

    try:
        if check_only:
            drift = check(root)
            if drift:
                print(
                    "generate: generated/ is out of date with spec/ and templates/:",
                    *drift,
                    "run `make generate` and commit the result",
                    sep="\n  ",
                    file=sys.stderr,
                )
                return 1
            print("generate: generated/ is up to date")
            return 0
        report = generate(root)
    except (SpecError, GenerationError) as exc:
        print(f"generate: failed, generated/ left unchanged\n{exc}", file=sys.stderr)
        return 1
    for name in report.changed:
        print(f"generate: wrote {name}")
    for change in report.scaffolded:
        rel = change.path.relative_to(root)
        print(f"generate: scaffolded {', '.join(change.added)} in {rel}: implement them")
    if report.scaffolded:
        print(
            "generate: the stubs answer 501 and the tests fail until they are implemented;"
            " `ruff check --fix handlers` sorts the imports they added"
        )
    if not report.changed and not report.scaffolded:
        print("generate: nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
