"""Progress bars in the console: the per-image "Sampling" bar, A1111's second "Total progress" bar for the
whole job (setting `multiple_tqdm`), and none at all with --disable-console-progressbars."""

from __future__ import annotations

from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img


def _job(app, n_iter: int = 2):
    p = StableDiffusionProcessingTxt2Img(
        prompt="a red star", steps=3, width=64, height=64, n_iter=n_iter, seed=1,
        do_not_save_samples=True, do_not_save_grid=True,
    )  # fmt: skip
    return app.runner.txt2img(p)


def test_the_total_bar_counts_every_step_of_the_job_and_can_be_turned_off(make_app, tmp_path, capsys):
    app = make_app(tmp_path, "--nowebui", loaded=True)
    capsys.readouterr()
    _job(app)
    err = capsys.readouterr().err
    assert "Sampling" in err and "Total progress" in err and "6/6" in err
    app.options.data["multiple_tqdm"] = False
    _job(app)
    err = capsys.readouterr().err
    assert "Sampling" in err and "Total progress" not in err


def test_disable_console_progressbars_leaves_the_console_quiet(make_app, tmp_path, capsys):
    app = make_app(tmp_path, "--nowebui", "--disable-console-progressbars", loaded=True)
    capsys.readouterr()
    assert len(_job(app).images) == 2
    err = capsys.readouterr().err
    assert "Sampling" not in err and "Total progress" not in err
