"""import (files, globs, snippets), environment substitution, cycles, files and checksum."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from clusterdns.corefile import CorefileError, load, parse
from tests.corefile.shapes import corefile_shape


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_import_file_inside_server_block(tmp_path: Path) -> None:
    _write(tmp_path / "plugins.conf", "log\ncache 30 {\n  success 100\n}\n")
    main = _write(tmp_path / "Corefile", ". {\n  errors\n  import plugins.conf\n  reload\n}\n")
    corefile = load(str(main))
    assert corefile_shape(corefile) == [
        (
            ["dns://.:None"],
            [
                ("errors", []),
                ("log", []),
                ("cache", ["30"], [("success", ["100"])]),
                ("reload", []),
            ],
        )
    ]
    log = corefile.blocks[0].directives[1]
    assert (log.file, log.line) == (str(tmp_path / "plugins.conf"), 1)
    assert corefile.files == (str(main), str(tmp_path / "plugins.conf"))
    data = main.read_bytes() + (tmp_path / "plugins.conf").read_bytes()
    assert corefile.checksum == hashlib.sha512(data).hexdigest()


def test_import_inside_directive_block(tmp_path: Path) -> None:
    _write(tmp_path / "k8s-options", "pods insecure\nttl 30\n")
    corefile = parse(
        ". {\n  kubernetes cluster.local {\n    import k8s-options\n    fallthrough\n  }\n}\n",
        base_dir=str(tmp_path),
    )
    assert corefile_shape(corefile) == [
        (
            ["dns://.:None"],
            [
                (
                    "kubernetes",
                    ["cluster.local"],
                    [("pods", ["insecure"]), ("ttl", ["30"]), ("fallthrough", [])],
                )
            ],
        )
    ]


def test_top_level_glob_import_of_server_blocks_in_sorted_order(tmp_path: Path) -> None:
    _write(tmp_path / "custom" / "b.server", "b.org {\n  log\n}\n")
    _write(tmp_path / "custom" / "a.server", "a.org:1053 {\n  errors\n}\n")
    _write(tmp_path / "custom" / "ignored.txt", "nonsense {\n")
    (tmp_path / "custom" / "dir.server").mkdir()  # directories matched by a glob are skipped
    main = _write(tmp_path / "Corefile", ". {\n  whoami\n}\nimport custom/*.server\n")
    corefile = load(str(main))
    assert corefile_shape(corefile) == [
        (["dns://.:None"], [("whoami", [])]),
        (["dns://a.org.:1053"], [("errors", [])]),
        (["dns://b.org.:None"], [("log", [])]),
    ]
    assert corefile.files == (
        str(main),
        str(tmp_path / "custom" / "a.server"),
        str(tmp_path / "custom" / "b.server"),
    )


def test_glob_matching_nothing_is_not_an_error(tmp_path: Path) -> None:
    corefile = parse(". {\n  import none/*.conf\n  log\n}\n", base_dir=str(tmp_path))
    assert corefile_shape(corefile) == [(["dns://.:None"], [("log", [])])]


def test_absolute_import_and_nested_relative_import(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "b" / "inner.conf", "cache 30\n")
    outer = _write(tmp_path / "a" / "outer.conf", "import b/inner.conf\nlog\n")
    corefile = parse(f". {{\n  import {outer}\n}}\n", base_dir="/nonexistent")
    assert corefile_shape(corefile) == [(["dns://.:None"], [("cache", ["30"]), ("log", [])])]


def test_import_file_read_once_even_if_imported_twice(tmp_path: Path) -> None:
    _write(tmp_path / "common", "log\n")
    main = _write(
        tmp_path / "Corefile", "a.org {\n  import common\n}\nb.org {\n  import common\n}\n"
    )
    corefile = load(str(main))
    assert [len(b.directives) for b in corefile.blocks] == [1, 1]
    assert corefile.files == (str(main), str(tmp_path / "common"))


def test_errors_point_into_the_imported_file(tmp_path: Path) -> None:
    # Imported files must be balanced, so a missing '}' is reported in the file that lacks it.
    inner = _write(tmp_path / "inner.conf", "log\n\nforward . {\n  max_fails 3\n")
    with pytest.raises(CorefileError) as info:
        parse(". {\n  import inner.conf\n}\n", base_dir=str(tmp_path))
    assert str(info.value) == (
        f"{inner}:4: unexpected end of file, expected '}}' to close block opened at line 3"
    )
    extra = _write(tmp_path / "extra.conf", "log\n}\n")
    with pytest.raises(CorefileError) as info:
        parse(". {\n  import extra.conf\n}\n", base_dir=str(tmp_path))
    assert (info.value.file, info.value.line) == (str(extra), 2)

    _write(tmp_path / "bad.conf", 'log "oops\n')
    with pytest.raises(CorefileError) as info:
        parse(". {\n  import bad.conf\n}\n", base_dir=str(tmp_path))
    assert (info.value.file, info.value.line) == (str(tmp_path / "bad.conf"), 1)


def test_file_import_cycle_names_the_import_line(tmp_path: Path) -> None:
    _write(tmp_path / "a.conf", "log\nimport b.conf\n")
    _write(tmp_path / "b.conf", "\n\nimport a.conf\n")
    main = _write(tmp_path / "Corefile", ". {\n  import a.conf\n}\n")
    with pytest.raises(CorefileError) as info:
        load(str(main))
    assert (info.value.file, info.value.line) == (str(tmp_path / "b.conf"), 3)
    assert "import cycle" in info.value.message
    assert info.value.message.endswith(
        f"{tmp_path / 'a.conf'} -> {tmp_path / 'b.conf'} -> {tmp_path / 'a.conf'}"
    )


def test_main_file_importing_itself_is_a_cycle(tmp_path: Path) -> None:
    main = _write(tmp_path / "Corefile", ". {\n  import Corefile\n}\n")
    with pytest.raises(CorefileError, match=r"Corefile:2: import cycle"):
        load(str(main))


def test_import_directory_and_unreadable_file_are_errors(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(CorefileError, match=r"^Corefile:2: import 'd': .* is a directory"):
        parse(". {\n  import d\n}\n", base_dir=str(tmp_path))
    _write(tmp_path / "latin1.conf", "").write_bytes(b"log\n\xff\n")
    with pytest.raises(CorefileError) as info:
        parse(". {\n  import latin1.conf\n}\n", base_dir=str(tmp_path))
    assert (info.value.line, info.value.message) == (2, "file is not valid UTF-8")


def test_load_missing_file() -> None:
    with pytest.raises(CorefileError, match=r"cannot read /nonexistent/Corefile"):
        load("/nonexistent/Corefile")


# --- snippets ----------------------------------------------------------------------------


def test_snippets_expand_in_blocks_and_keep_their_lines() -> None:
    text = (
        "(common) {\n"  # 1
        "  errors\n"  # 2
        "  cache 30 {\n"  # 3
        "    denial 100\n"  # 4
        "  }\n"  # 5
        "}\n"  # 6
        "a.org {\n"  # 7
        "  import common\n"  # 8
        "  log\n"  # 9
        "}\n"
        "b.org {\n"
        "  forward . 1.1.1.1 {\n"
        "    import common\n"
        "  }\n"
        "}\n"
    )
    corefile = parse(text)
    common = [("errors", []), ("cache", ["30"], [("denial", ["100"])])]
    assert corefile_shape(corefile) == [
        (["dns://a.org.:None"], [*common, ("log", [])]),
        (["dns://b.org.:None"], [("forward", [".", "1.1.1.1"], common)]),
    ]
    assert [d.line for d in corefile.blocks[0].directives] == [2, 3, 9]


def test_snippet_can_hold_whole_server_blocks() -> None:
    text = "(servers) {\n  a.org {\n    log\n  }\n}\nimport servers\n"
    assert corefile_shape(parse(text)) == [(["dns://a.org.:None"], [("log", [])])]


def test_snippet_imports_another_snippet_and_a_file(tmp_path: Path) -> None:
    _write(tmp_path / "extra", "reload\n")
    text = "(a) {\n  log\n}\n(b) {\n  import a\n  import extra\n}\n. {\n  import b\n}\n"
    corefile = parse(text, base_dir=str(tmp_path))
    assert corefile_shape(corefile) == [(["dns://.:None"], [("log", []), ("reload", [])])]


def test_snippet_defined_in_imported_file(tmp_path: Path) -> None:
    _write(tmp_path / "snippets.conf", "(defaults) {\n  errors\n  log\n}\n")
    text = "import snippets.conf\n. {\n  import defaults\n}\n"
    corefile = parse(text, base_dir=str(tmp_path))
    assert corefile_shape(corefile) == [(["dns://.:None"], [("errors", []), ("log", [])])]
    assert corefile.blocks[0].directives[0].file == str(tmp_path / "snippets.conf")


def test_imports_that_multiply_are_bounded() -> None:
    # Each snippet imports the previous one twice: 2**20 expansions without a limit.
    lines = ["(s0) {\n  log\n}\n"]
    for i in range(1, 21):
        lines.append(f"(s{i}) {{\n  import s{i - 1}\n  import s{i - 1}\n}}\n")
    lines.append(". {\n  import s20\n}\n")
    with pytest.raises(CorefileError, match="too many imports"):
        parse("".join(lines))


# --- environment substitution ------------------------------------------------------------

ENV = {"PORT": "1053", "ZONE": "Example.org", "UPSTREAM": "8.8.8.8", "WORD": "foobar"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "{$ZONE}:{$PORT} {\n}",
            [(["dns://example.org.:1053"], [])],
            id="{$VAR} in a key",
        ),
        pytest.param(
            "{env.ZONE}:{%PORT%} {\n}",
            [(["dns://example.org.:1053"], [])],
            id="{env.VAR} and {%VAR%} in a key",
        ),
        pytest.param(
            ". {\n  forward . {$UPSTREAM} tls://{env.UPSTREAM}:853\n}",
            [(["dns://.:None"], [("forward", [".", "8.8.8.8", "tls://8.8.8.8:853"])])],
            id="{$VAR} in arguments",
        ),
        pytest.param(
            '. {\n  x "Test {$WORD} test" "{{ .Name }} {$WORD}"\n}',
            [(["dns://.:None"], [("x", ["Test foobar test", "{{ .Name }} foobar"])])],
            id="inside quotes, next to template braces",
        ),
        pytest.param(
            ". {\n  x a{$UNSET}b {$UNSET}\n}",
            [(["dns://.:None"], [("x", ["ab", ""])])],
            id="unset variable → empty string",
        ),
        pytest.param(
            ". {\n  x {$} {%WORD} {$WORD\n}",
            [(["dns://.:None"], [("x", ["{$}", "{%WORD}", "{$WORD"])])],
            id="malformed references are left alone",
        ),
    ],
)
def test_env_substitution(text: str, expected: list[object]) -> None:
    assert corefile_shape(parse(text, env=ENV)) == expected


def test_env_in_import_pattern_and_default_is_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "conf.d" / "x.conf", "log\n")
    monkeypatch.setenv("CLUSTERDNS_TEST_CONF", "conf.d")
    corefile = parse(". {\n  import {$CLUSTERDNS_TEST_CONF}/*.conf\n}\n", base_dir=str(tmp_path))
    assert corefile_shape(corefile) == [(["dns://.:None"], [("log", [])])]
    assert os.environ["CLUSTERDNS_TEST_CONF"] == "conf.d"


def test_key_empty_after_substitution_is_an_error() -> None:
    with pytest.raises(CorefileError, match=r"^Corefile:2: empty server key"):
        parse("\n{$UNSET} {\n}\n", env={})
