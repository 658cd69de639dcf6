"""The overlay_factory fixture, exercised through pytest's own pytester."""

from __future__ import annotations

import os
import pathlib
import sys
import textwrap

import pytest

from tests.support.archive_builders import build

pytest_plugins = ["pytester"]


@pytest.fixture
def templates(pytester):
    """A directory template, a tar and a zip template, next to the inner test files."""
    root = pytester.path
    (root / "tpl" / "etc").mkdir(parents=True)
    (root / "tpl" / "etc" / "app.conf").write_text("debug = false\n")
    (root / "tpl" / "README").write_text("template\n")
    build(str(root / "tpl.tar.gz"), {"etc/app.conf": b"debug = false\n", "README": b"template\n"}, "tar.gz")
    build(str(root / "tpl.zip"), {"etc/app.conf": b"debug = false\n", "README": b"template\n"}, "zip")
    return root


def run(pytester, source: str, *args: str):
    pytester.makepyfile(test_inner=textwrap.dedent(source))
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_each_template_kind_gives_a_fresh_copy_on_write_overlay(pytester, templates):
    result = run(
        pytester,
        """
        import pytest
        from fs.osfs import OSFS
        from unionfs import OverlayFS

        KINDS = ["tpl", "tpl.tar.gz", "tpl.zip", "tar://tpl.tar.gz", "FS"]

        def template(kind):
            return OSFS("tpl") if kind == "FS" else kind

        @pytest.mark.parametrize("kind", KINDS)
        def test_write(overlay_factory, kind):
            overlay = overlay_factory(template(kind))
            assert isinstance(overlay, OverlayFS)
            overlay.writetext("etc/app.conf", "debug = true\\n")
            overlay.remove("README")
            overlay.makedir("var")
            changes = overlay.changes()
            assert changes.modified == ("/etc/app.conf",)
            assert changes.deleted == ("/README",)
            assert changes.added == ("/var",)

        @pytest.mark.parametrize("kind", KINDS)
        def test_next_test_sees_the_pristine_template(overlay_factory, kind):
            overlay = overlay_factory(template(kind))
            assert overlay.readtext("etc/app.conf") == "debug = false\\n"
            assert sorted(overlay.listdir("/")) == ["README", "etc"]
            assert len(overlay.changes()) == 0
        """,
    )
    result.assert_outcomes(passed=10)
    assert (templates / "tpl" / "etc" / "app.conf").read_text() == "debug = false\n"


def test_a_test_that_changes_the_template_fails(pytester, templates):
    result = run(
        pytester,
        """
        def test_tamper_with_the_directory(overlay_factory):
            overlay_factory("tpl")
            open("tpl/intruder", "w").close()

        def test_tamper_with_the_archive(overlay_factory):
            overlay_factory("tpl.zip")
            with open("tpl.zip", "ab") as handle:
                handle.write(b"junk")
        """,
    )
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_tamper_with_the_directory*",
            "*the pristine template changed during test_inner.py::test_tamper_with_the_directory:*",
            "*template tpl: intruder changed*",
            "*ERROR at teardown of test_tamper_with_the_archive*",
            "*changed during the session:*",  # the session-end full check
            "*template tpl: /intruder differs*",
            "*tpl.zip differs*",
            "*template tpl.zip: its root*tpl.zip changed*",
        ]
    )


def test_deep_changes_are_found_after_each_test_or_at_session_end(pytester, templates):
    source = """
        def test_rewrite_a_nested_file(overlay_factory):
            overlay_factory("tpl")
            with open("tpl/etc/app.conf", "r+") as handle:
                handle.write("DEBUG")  # same size, root directory untouched

        def test_later(overlay_factory):
            overlay_factory("tpl")
        """
    each = run(pytester, source, "--unionfs-template-check=each")
    each.assert_outcomes(passed=2, errors=2)  # this test, and the session-end check
    each.stdout.fnmatch_lines(["*ERROR at teardown of test_rewrite_a_nested_file*", "*/etc/app.conf differs*"])
    (templates / "tpl" / "etc" / "app.conf").write_text("debug = false\n")
    session = run(pytester, source)
    # inotify names the file at the teardown of the test that rewrote it; the session end
    # finds the changed hash as well
    session.assert_outcomes(passed=2, errors=2)
    session.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_rewrite_a_nested_file*",
            "*changed during test_inner.py::test_rewrite_a_nested_file:*",
            "*template tpl: etc/app.conf changed*",
            "*ERROR at teardown of test_later*",
            "*changed during the session:*",
            "*/etc/app.conf differs*",
        ]
    )


def test_a_change_is_reported_at_the_teardown_of_the_test_that_made_it(pytester, templates):
    """Issue 11 item 12: not at the last test's teardown, and naming the test."""
    result = run(
        pytester,
        """
        def test_first(overlay_factory):
            overlay_factory("tpl")

        def test_culprit(overlay_factory):
            overlay_factory("tpl")
            with open("tpl/README", "a") as handle:
                handle.write("more")

        def test_innocent(overlay_factory):
            overlay_factory("tpl")

        def test_last(overlay_factory):
            overlay_factory("tpl")
        """,
    )
    result.assert_outcomes(passed=4, errors=2)  # test_culprit's teardown, and the session end
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_culprit*", "*changed during test_inner.py::test_culprit:*", "*template tpl: README changed*"]
    )
    teardown_errors = [line for line in result.outlines if "ERROR at teardown of" in line]
    assert not any("test_innocent" in line for line in teardown_errors)


def test_relative_templates_resolve_against_the_rootdir(pytester, templates):
    """Issue 11 item 12: pytest started from a subdirectory finds ``"tpl"`` (and ``tar://``
    URLs) relative to its rootdir, as its own paths are, not to the process's directory."""
    (pytester.path / "pytest.ini").write_text("[pytest]\n")
    sub = pytester.path / "sub"
    sub.mkdir()
    (sub / "test_from_sub.py").write_text(textwrap.dedent(
        """
        import os

        def test_relative(overlay_factory):
            assert os.path.basename(os.getcwd()) == "sub"
            assert overlay_factory("tpl").readtext("README") == "template\\n"
            assert overlay_factory("tar://tpl.tar.gz").readtext("README") == "template\\n"
        """
    ))
    os.chdir(sub)
    result = pytester.runpytest("-p", "no:cacheprovider", "test_from_sub.py")
    result.assert_outcomes(passed=1)


def test_write_attempts_through_the_guard_are_reported(pytester, templates):
    result = run(
        pytester,
        """
        import pytest
        from fs import errors

        def test_sneak(overlay_factory):
            overlay = overlay_factory("tpl")
            lower = overlay._layers[1].fs   # reaching past the overlay, as a bug in it would
            with pytest.raises(errors.ResourceReadOnly):
                lower.writetext("README", "x")
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*writetext('README') reached the template*"])


def test_setup_and_teardown_cost_do_not_grow_with_the_template(pytester):
    """Reads of the template made per test are the same for 10 and for 2000 files."""
    result = run(
        pytester,
        """
        from fs.memoryfs import MemoryFS
        from fs.wrapfs import WrapFS

        class Counting(WrapFS):
            calls = 0
            def scandir(self, *a, **k):
                type(self).calls += 1; return super().scandir(*a, **k)
            def getinfo(self, *a, **k):
                type(self).calls += 1; return super().getinfo(*a, **k)
            def openbin(self, *a, **k):
                type(self).calls += 1; return super().openbin(*a, **k)

        class Small(Counting): calls = 0
        class Big(Counting): calls = 0

        def template(cls, files):
            layer = MemoryFS()
            layer.makedirs("a")
            layer.writetext("a/f.txt", "f")
            layer.makedirs("bulk")
            for number in range(files):
                layer.writetext("bulk/x%d" % number, "x" * 100)
            return cls(layer)

        SMALL, BIG = template(Small, 10), template(Big, 2000)
        counted = {}

        def test_0_first_use_fingerprints(overlay_factory):
            overlay_factory(SMALL); overlay_factory(BIG)

        def test_1_small(overlay_factory):
            Small.calls = 0
            assert overlay_factory(SMALL).readtext("a/f.txt") == "f"

        def test_2_big(overlay_factory):
            counted["small"] = Small.calls   # test_1's setup, body and teardown
            Big.calls = 0
            assert overlay_factory(BIG).readtext("a/f.txt") == "f"

        def test_3_compare():
            assert Big.calls == counted["small"] > 0
        """,
    )
    result.assert_outcomes(passed=4)


def readme_example() -> str:
    """The complete example of README.rst's fixture section, as written there."""
    import pathlib

    readme = (pathlib.Path(__file__).parents[2] / "README.rst").read_text()
    after = readme.split("A complete example, ``tests/test_config.py``:", 1)[1]
    block = after.split(".. code-block:: python", 1)[1].split("\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "pytest-template"


def test_the_examples_directory_is_the_readme_example_and_passes(pytester):
    """Issue 11 item 12: the README's complete example is in the repository
    (``examples/pytest-template``, with a script that makes its template) and passes."""
    assert (EXAMPLES / "tests" / "test_config.py").read_text().strip() == readme_example().strip()
    for path in EXAMPLES.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = pytester.path / path.relative_to(EXAMPLES)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    made = pytester.run(sys.executable, "make_template.py")
    assert made.ret == 0, made.stderr.str()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_readme_example_passes(pytester):
    (pytester.path / "tests" / "data").mkdir(parents=True)
    build(str(pytester.path / "tests" / "data" / "site-template.tar.gz"),
          {"var/log/app.log": b"log\n", "etc/site.conf": b"x\n"}, "tar.gz")
    pytester.makepyfile(**{"tests/test_config": readme_example()})
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
