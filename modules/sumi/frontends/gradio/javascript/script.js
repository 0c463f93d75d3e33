// A1111's script.js contract, for extensions' javascript/*.js: it runs in the page <head> before them and
// before DOMContentLoaded, as in A1111. Top-level declarations are page globals on purpose (A1111's
// extensions call them by bare name). A callback that throws is logged and the others still run.

function gradioApp() {
    const elems = document.getElementsByTagName("gradio-app");
    const elem = elems.length === 0 ? document : elems[0];
    if (elem !== document) {
        elem.getElementById = function (id) { return document.getElementById(id); };
    }
    return elem.shadowRoot ? elem.shadowRoot : elem;
}

// The selected top-level tab's button (e.g. the one that says "Extras").
function get_uiCurrentTab() {
    return gradioApp().querySelector("#tabs button[role=tab][aria-selected=true], #tabs > .tab-nav > button.selected");
}

// The first visible top-level tab's content (e.g. the element holding the txt2img UI).
function get_uiCurrentTabContent() {
    for (const panel of gradioApp().querySelectorAll("#tabs .tabitem[id^=tab_], #tabs [role=tabpanel][id^=tab_]")) {
        if (panel.closest("#tabs") === gradioApp().querySelector("#tabs") && uiElementIsVisible(panel)) return panel;
    }
    return null;
}

var uiUpdateCallbacks = [];
var uiAfterUpdateCallbacks = [];
var uiLoadedCallbacks = [];
var uiTabChangeCallbacks = [];
var optionsChangedCallbacks = [];
var optionsAvailableCallbacks = [];
var uiAfterUpdateTimeout = null;
var uiCurrentTab = null;
var onUiLoadedCallbacks = uiLoadedCallbacks; // some extensions read this older name

function onUiUpdate(callback) { uiUpdateCallbacks.push(callback); }
function onAfterUiUpdate(callback) { uiAfterUpdateCallbacks.push(callback); }
// Sumi: a callback registered after the UI has loaded runs at once (A1111 would never call it).
function onUiLoaded(callback) {
    uiLoadedCallbacks.push(callback);
    if (executedOnLoaded) setTimeout(function () { executeCallbacks([callback]); }, 0);
}
function onUiTabChange(callback) { uiTabChangeCallbacks.push(callback); }
function onOptionsChanged(callback) { optionsChangedCallbacks.push(callback); }
// Called at once when `opts` is already filled (once the page is drawn).
function onOptionsAvailable(callback) {
    if (executedOnLoaded) {
        callback();
        return;
    }
    optionsAvailableCallbacks.push(callback);
}

function executeCallbacks(queue, arg) {
    for (const callback of queue.slice()) {
        try {
            callback(arg);
        } catch (e) {
            console.error("error running callback", callback, ":", e);
        }
    }
}

// onAfterUiUpdate callbacks run once, 200 ms after the last of a burst of page changes.
function scheduleAfterUiUpdateCallbacks() {
    clearTimeout(uiAfterUpdateTimeout);
    uiAfterUpdateTimeout = setTimeout(function () { executeCallbacks(uiAfterUpdateCallbacks); }, 200);
}

var executedOnLoaded = false;

// Gradio 3 drew a Textbox as `#id > label > textarea`, and extensions select it so (tagcomplete's
// `#txt2img_prompt > label > textarea`); Gradio 6 puts a div between. A textarea alone in that div is
// moved up into the label: the same element, so Gradio's own handlers on it keep working.
function sumiTextareasWhereGradio3HadThem() {
    for (const area of gradioApp().querySelectorAll("label > div.input-container > textarea:only-child")) {
        const holder = area.parentElement;
        holder.parentElement.insertBefore(area, holder);
    }
}

// Gradio 3 showed the selected tab's panel (`.tabitem`, e.g. #tab_img2img) with the inline style
// `display: block`, Gradio 6 with `display: flex`; hidden ones are `display: none` in both. Page scripts
// test for "block" (sd-webui-oldsix-prompt watches #tab_txt2img and #tab_img2img for a computed display
// of "block" to know which prompt box its picker writes to), so a shown panel gets `block` back each time
// Gradio shows it. One observer, made before any extension's: it runs first on each change.
var sumiTabPanels = new WeakSet();
var sumiTabPanelObserver = new MutationObserver(function (records) {
    for (const record of records) sumiTabPanelAsGradio3(record.target);
});

function sumiTabPanelAsGradio3(panel) {
    if (panel.style.display === "flex") panel.style.display = "block";
}

function sumiTabPanelsAsGradio3() {
    for (const panel of gradioApp().querySelectorAll(".tabitem")) {
        if (sumiTabPanels.has(panel)) continue;
        sumiTabPanels.add(panel);
        sumiTabPanelAsGradio3(panel);
        sumiTabPanelObserver.observe(panel, { attributes: true, attributeFilter: ["style"] });
    }
}

// Gradio 3 drew the whole page at once; Gradio 6 draws it in waves, one component type after another
// (a type's code is fetched on first use: text boxes, then sliders, ..., buttons and galleries a second
// or more after the prompt). A1111 fills `opts` and runs onUiLoaded only when its page is there, and
// extensions rely on it: aspect-ratio-helper waits for #txt2img_width and `opts`, then moves
// #txt2img_res_switch_btn; canvas-zoom looks up the quicksettings and send-to buttons. So both wait for
// A1111's landmark elements and one element of every component type the page shows; if ui-config.json
// or a hidden tab leaves one out, the page loads anyway SUMI_LOAD_FALLBACK_MS after the prompt appeared.
var SUMI_LOAD_FALLBACK_MS = 6000;
var sumiPageDrawnSelectors = [
    "#txt2img_prompt textarea", "#txt2img_generate", "#txt2img_width input[type=range]",
    "#txt2img_res_switch_btn", "#txt2img_sampling", "#txt2img_steps", "#txt2img_seed input",
    "#txt2img_gallery", "#html_info_txt2img", "#txt2img_send_to_inpaint", "#img2img_prompt textarea",
    "#img2img_generate", "#img2img_gallery", "#img2img_image", "#img2img_res_switch_btn",
    "#img2img_send_to_inpaint", "#html_info_img2img", "#refresh_sd_model_checkpoint",
];

var sumiIdsByComponentType = null; // from the page's Gradio config, read once

function sumiEveryComponentTypeDrawn() {
    if (sumiIdsByComponentType === null) {
        sumiIdsByComponentType = {};
        for (const c of (window.gradio_config && window.gradio_config.components) || []) {
            const id = c.props && c.props.elem_id;
            if (!id || c.props.visible === false) continue;
            (sumiIdsByComponentType[c.type] = sumiIdsByComponentType[c.type] || []).push(id);
        }
    }
    return Object.values(sumiIdsByComponentType).every((ids) => ids.some((id) => document.getElementById(id)));
}

function sumiPageDrawn() {
    const app = gradioApp();
    return sumiPageDrawnSelectors.every((selector) => app.querySelector(selector) !== null) && sumiEveryComponentTypeDrawn();
}

var sumiLoadFallback = null;
function sumiPageLoaded() {
    if (executedOnLoaded) return;
    executedOnLoaded = true;
    clearTimeout(sumiLoadFallback);
    Object.assign(opts, window.sumiPageOpts || {});
    executeCallbacks(optionsAvailableCallbacks);
    executeCallbacks(uiLoadedCallbacks);
}

function sumiOnPageMutation(mutations) {
    sumiTextareasWhereGradio3HadThem();
    sumiTabPanelsAsGradio3();
    sumiTabNavsAsGradio3();
    if (!executedOnLoaded && sumiPageDrawn()) {
        sumiPageLoaded();
    } else if (!executedOnLoaded && !sumiLoadFallback && gradioApp().querySelector("#txt2img_prompt")) {
        sumiLoadFallback = setTimeout(sumiPageLoaded, SUMI_LOAD_FALLBACK_MS);
    }
    executeCallbacks(uiUpdateCallbacks, mutations);
    scheduleAfterUiUpdateCallbacks();
    const newTab = get_uiCurrentTab();
    if (newTab && newTab !== uiCurrentTab) {
        uiCurrentTab = newTab;
        executeCallbacks(uiTabChangeCallbacks);
    }
}

// Gradio 3 drew a Tabs' buttons in `div.tab-nav`; page scripts and themes look them up so
// (`#txt2img_extra_tabs .tab-nav button`). Gradio 6's button row is `div.tab-container[role=tablist]`:
// it gets A1111's class names too (the components themselves get theirs from a1111_classes.py).
function sumiTabNavsAsGradio3() {
    for (const nav of gradioApp().querySelectorAll(".tab-container[role=tablist]:not(.tab-nav)")) {
        nav.classList.add("tab-nav", "scroll-hide");
    }
}

// Gradio may have drawn the page before DOMContentLoaded, and other DOMContentLoaded listeners (the
// extensions' among them) register their callbacks after this one: page changes seen before they all
// ran are handed over, with a first look for the loaded UI, once they have.
document.addEventListener("DOMContentLoaded", function () {
    let early = [];
    new MutationObserver(function (m) {
        if (early === null) sumiOnPageMutation(m);
        else early.push(...m);
    }).observe(gradioApp(), { childList: true, subtree: true });
    setTimeout(function () {
        const records = early;
        early = null;
        sumiOnPageMutation(records);
    }, 0);
});

// Not in a hidden element or an unselected tab.
function uiElementIsVisible(el) {
    if (el === null || el === undefined) return false;
    if (el === document || el.nodeType === Node.DOCUMENT_FRAGMENT_NODE) return true;
    if (el.nodeType !== Node.ELEMENT_NODE) return uiElementIsVisible(el.parentNode);
    if (getComputedStyle(el).display === "none") return false;
    return uiElementIsVisible(el.parentNode);
}

// Some of it is on the screen.
function uiElementInSight(el) {
    const rect = el.getBoundingClientRect();
    return rect.bottom > 0 && rect.top < window.innerHeight;
}

// A1111's keyboard shortcuts: Ctrl/Cmd+Enter generates (or interrupts, then generates), Alt+Enter skips,
// Esc interrupts, in the tab on screen.
document.addEventListener("keydown", function (e) {
    const isEnter = e.key === "Enter" || e.keyCode === 13;
    const isEsc = e.key === "Escape";
    if (!isEnter && !isEsc) return;
    const content = get_uiCurrentTabContent();
    if (!content) return;
    const generate = content.querySelector("button[id$=_generate]");
    const interrupt = content.querySelector("button[id$=_interrupt]");
    const skip = content.querySelector("button[id$=_skip]");
    const running = interrupt && uiElementIsVisible(interrupt);
    if (isEnter && (e.metaKey || e.ctrlKey)) {
        // Sumi's own script.js handles Ctrl+Enter in a prompt box; this covers the rest of the tab.
        if (e.target.closest && e.target.closest(window.sumiPromptBoxes || "#none")) return;
        if (!generate) return;
        e.preventDefault();
        if (running) {
            interrupt.click();
            const wait = setInterval(function () {
                if (!uiElementIsVisible(interrupt)) {
                    clearInterval(wait);
                    generate.click();
                }
            }, 100);
        } else {
            generate.click();
        }
    } else if (isEnter && e.altKey && skip) {
        e.preventDefault();
        skip.click();
    } else if (isEsc && running) {
        const lightbox = document.querySelector("#lightboxModal");
        if (document.activeElement === lightbox) return;
        const popup = document.querySelector(".global-popup");
        if (popup && popup.style.display !== "none") return;
        e.preventDefault();
        interrupt.click();
    }
});
