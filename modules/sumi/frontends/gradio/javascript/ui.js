// A1111's javascript/ui.js: the small page functions its Python side names in `_js=` and extensions call.

var opts = window.opts || {}; // filled from the server's settings (window.sumiPageOpts) once the page is drawn

// Thumbnails of the gallery on the visible tab (Gradio's gallery: buttons in .thumbnails).
function all_gallery_buttons() {
    const buttons = gradioApp().querySelectorAll("div[id$=_gallery] .thumbnails button, div[id$=_gallery] .thumbnail-item");
    return Array.from(buttons).filter((b) => b.offsetParent !== null && uiElementIsVisible(b));
}

function sumiIsSelectedThumbnail(elem) {
    return elem.classList.contains("selected") || elem.getAttribute("aria-selected") === "true";
}

function selected_gallery_button() {
    return all_gallery_buttons().find(sumiIsSelectedThumbnail) ?? null;
}

function selected_gallery_index() {
    return all_gallery_buttons().findIndex(sumiIsSelectedThumbnail);
}

function gallery_container_buttons(gallery_container) {
    return gradioApp().querySelectorAll(`#${gallery_container} .thumbnails button, #${gallery_container} .thumbnail-item`);
}

function selected_gallery_index_id(gallery_container) {
    return Array.from(gallery_container_buttons(gallery_container)).findIndex(sumiIsSelectedThumbnail);
}

function extract_image_from_gallery(gallery) {
    if (gallery.length === 0) return [null];
    if (gallery.length === 1) return [gallery[0]];
    let index = selected_gallery_index();
    if (index < 0 || index >= gallery.length) index = 0;
    return [gallery[index]];
}

window.args_to_array = Array.from;

function sumiTopTabButton(label, index) {
    const buttons = Array.from(gradioApp().querySelectorAll("#tabs button[role=tab]")).filter(
        (b) => b.closest("[role=tablist]") && b.closest("#tabs") === gradioApp().querySelector("#tabs")
    );
    return buttons.find((b) => b.textContent.trim() === label) || buttons[index];
}

function switch_to_txt2img() {
    sumiTopTabButton("txt2img", 0)?.click();
    return Array.from(arguments);
}

function switch_to_img2img_tab(no) {
    sumiTopTabButton("img2img", 1)?.click();
    setTimeout(function () {
        gradioApp().getElementById("mode_img2img")?.querySelectorAll("button[role=tab]")[no]?.click();
    }, 0);
}
function switch_to_img2img() { switch_to_img2img_tab(0); return Array.from(arguments); }
function switch_to_sketch() { switch_to_img2img_tab(1); return Array.from(arguments); }
function switch_to_inpaint() { switch_to_img2img_tab(2); return Array.from(arguments); }
function switch_to_inpaint_sketch() { switch_to_img2img_tab(3); return Array.from(arguments); }

function switch_to_extras() {
    sumiTopTabButton("Extras", 2)?.click();
    return Array.from(arguments);
}

// Index of the selected sub-tab of the Tabs element `tabId` (e.g. "mode_img2img").
function get_tab_index(tabId) {
    const tabs = gradioApp().getElementById(tabId);
    if (!tabs) return 0;
    const buttons = Array.from(tabs.querySelectorAll("button[role=tab]")).filter((b) => b.closest(".tabs, [id]") === tabs || b.closest("#" + tabId) === tabs);
    for (let i = 0; i < buttons.length; i++) {
        if (buttons[i].classList.contains("selected") || buttons[i].getAttribute("aria-selected") === "true") return i;
    }
    return 0;
}

function create_tab_index_args(tabId, args) {
    const res = Array.from(args);
    res[0] = get_tab_index(tabId);
    return res;
}

function get_img2img_tab_index() {
    const res = Array.from(arguments);
    res.splice(-2);
    res[0] = get_tab_index("mode_img2img");
    return res;
}

// The generate box of a tab built with `ui_toprow.Toprow` or by an extension itself (A1111's names:
// `<tabname>_interrupt`, `_skip`, `_interrupting`): Interrupt and Skip are shown while its job runs,
// "Interrupting..." after Interrupt was pressed (A1111's functions, which the extension's submit function
// calls: showSubmitButtons('deforum', false)). A button that is not on the page is passed over.
function setSubmitButtonsVisibility(tabname, showInterrupt, showSkip, showInterrupting) {
    const show = (id, on) => {
        const el = gradioApp().getElementById(tabname + id);
        if (el) el.style.display = on ? "block" : "none";
    };
    show("_interrupt", showInterrupt);
    show("_skip", showSkip);
    show("_interrupting", showInterrupting);
}

function showSubmitButtons(tabname, show) {
    setSubmitButtonsVisibility(tabname, !show, !show, false);
}

function showSubmitInterruptingPlaceholder(tabname) {
    setSubmitButtonsVisibility(tabname, false, true, true);
}

function showRestoreProgressButton(tabname, show) {
    const button = gradioApp().getElementById(tabname + "_restore_progress");
    if (button) button.style.setProperty("display", show ? "flex" : "none", "important");
}

// A1111's ↪️ restore progress: the page keeps the task id of the job it runs (`<tab>_task_id` in
// localStorage, as A1111's) until the job's end is shown, so a page opened again (a reload, a closed tab)
// offers ↪️, which shows that job's progress and then its images.
function sumiRememberTask(tabname, id) {
    if (id) localSet(tabname + "_task_id", id);
    else localRemove(tabname + "_task_id");
    showRestoreProgressButton(tabname, false);
}

// The id is forgotten here and kept again when the server finds the job still running.
function sumiRestoreTask(tabname) {
    showRestoreProgressButton(tabname, false);
    const id = localGet(tabname + "_task_id") || "";
    localRemove(tabname + "_task_id");
    return id;
}

function restoreProgressTxt2img() {
    return sumiRestoreTask("txt2img");
}

function restoreProgressImg2img() {
    return sumiRestoreTask("img2img");
}

onUiLoaded(function() {
    for (const tabname of ["txt2img", "img2img"]) showRestoreProgressButton(tabname, !!localGet(tabname + "_task_id"));
});

// A1111 leaves out the gallery that Gradio 3 sent back with the inputs (third from the end).
function create_submit_args(args) {
    const res = Array.from(args);
    if (Array.isArray(res[res.length - 3])) res[res.length - 3] = null;
    return res;
}

function randomId() {
    return "task(" + Math.random().toString(36).slice(2, 7) + Math.random().toString(36).slice(2, 7) + Math.random().toString(36).slice(2, 7) + ")";
}

// `_js="submit"` on an extension's button: the arguments, with A1111's task id as the first one.
function submit() {
    const res = create_submit_args(arguments);
    res[0] = randomId();
    return res;
}

function submit_txt2img_upscale() {
    const res = submit(...arguments);
    res[2] = selected_gallery_index();
    return res;
}

function submit_img2img() {
    const res = create_submit_args(arguments);
    res[0] = randomId();
    res[1] = get_tab_index("mode_img2img");
    return res;
}

function submit_extras() {
    const res = create_submit_args(arguments);
    res[0] = randomId();
    res[1] = get_tab_index("mode_extras");
    return res;
}

function ask_for_style_name(_, prompt_text, negative_prompt_text) {
    const name = prompt("Style name:");
    return [name, prompt_text, negative_prompt_text];
}

function confirm_clear_prompt(prompt_text, negative_prompt) {
    if (confirm("Delete prompt?")) {
        prompt_text = "";
        negative_prompt = "";
    }
    return [prompt_text, negative_prompt];
}

// Wait for the restarted server (a new boot id at /internal/ping), then load the page again.
function restart_reload() {
    document.body.style.backgroundColor = "var(--background-fill-primary)";
    document.body.innerHTML = '<h1 style="font-family:monospace;margin-top:20%;color:lightgray;text-align:center;">Reloading...</h1>';
    const ping = function () {
        fetch("./internal/ping", { cache: "no-store" })
            .then((r) => (r.ok ? location.reload() : setTimeout(ping, 500)))
            .catch(() => setTimeout(ping, 500));
    };
    setTimeout(ping, 2000);
    return [];
}

// An `input` event, so that Gradio sees a value that a script wrote into a textbox or number.
function updateInput(target) {
    const e = new Event("input", { bubbles: true });
    Object.defineProperty(e, "target", { value: target });
    target.dispatchEvent(e);
}

function setRandomSeed(elem_id) {
    const input = gradioApp().querySelector("#" + elem_id + " input");
    if (!input) return [];
    input.value = "-1";
    updateInput(input);
    return [];
}

function switchWidthHeight(tabname) {
    const width = gradioApp().querySelector("#" + tabname + "_width input[type=number]");
    const height = gradioApp().querySelector("#" + tabname + "_height input[type=number]");
    if (!width || !height) return [];
    const w = width.value;
    width.value = height.value;
    height.value = w;
    updateInput(width);
    updateInput(height);
    return [];
}

var onEditTimers = {};
// `func` runs `afterMs` after the user stopped editing `elem`.
function onEdit(editId, elem, afterMs, func) {
    const edited = function () {
        clearTimeout(onEditTimers[editId]);
        onEditTimers[editId] = setTimeout(func, afterMs);
    };
    elem.addEventListener("input", edited);
    return edited;
}

function currentImg2imgSourceResolution(w, h, scaleBy) {
    const img = gradioApp().querySelector("#mode_img2img [role=tabpanel]:not([style*='display: none']) img");
    return img ? [img.naturalWidth, img.naturalHeight, scaleBy] : [0, 0, scaleBy];
}

// Settings saved in the Settings tab: Sumi's settings page calls this with the new values.
function sumiOptionsChanged(values) {
    Object.assign(opts, values || {});
    executeCallbacks(optionsChangedCallbacks);
}
