"""Settings > Startup profile and /internal/profile-startup: where the server's start went, phase by
phase and script by script (A1111's startup profile), with what an extension records through
`modules.timer.startup_timer` filed under the script that was loading."""

from __future__ import annotations

from modules.sumi.frontends.gradio.startup_profile import NOT_YET, profile_html, profile_rows
from tests.app_support import local_client
from tests.fixtures.files import write_files
from tests.html_tree import parse

EXTENSION = {
    "extensions/sumi-slow-ext/scripts/slow.py": """
        from modules import scripts
        from modules.timer import startup_timer

        startup_timer.record("before its own check")  # an extension timing a part of its import


        class Script(scripts.Script):
            def title(self):
                return "slow"

            def show(self, is_img2img):
                return scripts.AlwaysVisible
    """,
}


def test_rows_put_each_phase_in_order_and_its_parts_under_it_slowest_first():
    records = {
        "initialize services": 0.5,
        "load scripts/a.py": 0.1,
        "load scripts/ext-x/scripts/b.py": 0.7,  # a label with "/" of its own stays one row
        "load scripts": 0.9,
        "create ui/txt2img": 1.0,
        "create ui/extension tabs/ext-x/tab.py": 0.2,
        "create ui/extension tabs": 0.2,
        "create ui": 1.4,
        "an/extension's own record": 0.3,  # no recorded prefix: top level
    }
    assert profile_rows(records) == [
        (0, "initialize services", 0.5),
        (0, "load scripts", 0.9),
        (1, "ext-x/scripts/b.py", 0.7),
        (1, "a.py", 0.1),
        (0, "create ui", 1.4),
        (1, "txt2img", 1.0),
        (1, "extension tabs", 0.2),
        (2, "ext-x/tab.py", 0.2),
        (0, "an/extension's own record", 0.3),
    ]


def test_the_table_escapes_names_counts_tiny_rows_and_says_when_the_start_is_not_over():
    text = profile_html({"total": 2.0, "records": {"<b>x</b>": 1.0, "tiny": 0.001}})
    root = parse(text)
    rows = root.find_all(lambda n: n.tag == "tr")[1:]  # the header row first
    cells = [[td.text() for td in tr.find_all(lambda n: n.tag == "td")] for tr in rows]
    assert cells[0][:2] == ["<b>x</b>", "1.000s"] and cells[-1][:2] == ["Total", "2.000s"]
    assert "<b>" not in text and "1 entries under 5 ms are not listed" in text
    assert 'style="width: 50.0%"' in text
    assert profile_html(None) == NOT_YET


def test_the_profile_route_lists_phases_scripts_and_an_extension_s_own_record(tmp_path, make_app):
    from webui import build_server

    data = write_files(tmp_path / "data", EXTENSION)
    app = make_app(data)
    client = local_client(build_server(app))
    profile = client.get("/internal/profile-startup").json()
    records = profile["records"]
    for phase in (
        "initialize services",
        "list SD models",
        "load scripts",
        "create ui",
        "app_started_callback",
    ):
        assert phase in records, phase
    assert "load scripts/before its own check" in records  # recorded while slow.py was imported
    assert "load scripts/sumi-slow-ext/slow.py" in records
    assert "load scripts/xyz_grid.py" in records  # Sumi's own scripts by file name
    assert {"create ui/txt2img", "create ui/img2img", "create ui/settings"} <= set(records)
    assert profile["total"] >= records["load scripts"] + records["create ui"]
    assert profile == app.startup_record


def test_the_settings_section_fills_when_opened(tmp_path, make_app):
    """The section's fill function renders the App's record (wired to its expand and Refresh)."""
    from webui import build_server

    app = make_app(tmp_path / "data")
    build_server(app)
    section = next(b for b in app.demo.blocks.values() if getattr(b, "elem_id", None) == "startup_profile")
    fills = [d for d in app.demo.fns.values() if [o._id for o in d.outputs] == [section._id]]
    assert len(fills) == 2  # expand and Refresh
    html = fills[0].fn()
    assert "load scripts" in html and "create ui" in html and "Total" in html


def test_modules_timer_is_a1111_s_with_the_running_app_s_start_up_timer(make_app, tmp_path):
    import modules.timer as timer

    app = make_app(tmp_path / "data")
    assert timer.startup_timer is app.startup_timer
    assert timer.startup_record is app.startup_record
    t = timer.Timer()
    with t.subcategory("x"):
        t.record("y")
    assert set(t.dump()["records"]) == {"x/y", "x"}
