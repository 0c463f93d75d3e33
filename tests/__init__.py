"""Sumi's tests, in folders that mirror the code's layers (DESIGN.md):

- engine/           modules/sumi/engine: loading, families, text conditioning, samplers, networks,
                    ControlNet, equivalence with diffusers' pipelines (torch only, no App)
- services/         modules/sumi/services: settings, checkpoints, images, infotext, networks on a live App
- app/              the whole App as a user sees it (App.txt2img and the HTTP API end to end)
- builtin_scripts/  Prompt matrix, X/Y/Z plot, Prompts from file
- frontends/gradio/ the web UI's handlers without a browser; frontends/http/ the A1111 HTTP API
- browser/          Playwright + Chromium against real servers (marked `browser`, skipped without Chromium)
- compat/           the A1111 surface extensions use: facades, scripts and callbacks, extension loading,
                    the import coverage of a1111_surface.json
- fixtures/         tiny models and files in the formats people download (models from
                    modules/sumi/engine/tiny_models.py), extensions, infotexts

conftest.py has the shared fixtures (tiny checkpoints, `make_app` / `make_module_app`, `client`);
app_support.py the App factory, servers and API helpers; browser_support.py Chromium and page helpers.
"""
