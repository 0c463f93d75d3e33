// A1111's page helpers (script.js / ui.js of stable-diffusion-webui) that extensions' javascript/*.js
// call. Loaded before the extensions' scripts. A callback that throws is logged and the others run.
(function () {
    "use strict";
    if (window.sumiA1111Compat) return;
    window.sumiA1111Compat = true;

    window.gradioApp = function () {
        const elems = document.getElementsByTagName("gradio-app");
        const elem = elems.length === 0 ? document : elems[0];
        if (elem !== document) {
            elem.getElementById = function (id) { return document.getElementById(id); };
        }
        return elem.shadowRoot ? elem.shadowRoot : elem;
    };

    const callbacks = { uiLoaded: [], uiUpdate: [], afterUiUpdate: [], uiTabChange: [], optionsChanged: [] };
    const register = (list) => function (callback) { list.push(callback); };
    window.onUiLoaded = register(callbacks.uiLoaded);
    window.onUiUpdate = register(callbacks.uiUpdate);
    window.onAfterUiUpdate = register(callbacks.afterUiUpdate);
    window.onUiTabChange = register(callbacks.uiTabChange);
    window.onOptionsChanged = register(callbacks.optionsChanged);
    window.onUiLoadedCallbacks = callbacks.uiLoaded;  // some extensions read A1111's arrays

    function executeCallbacks(list, arg) {
        for (const callback of list.slice()) {
            try {
                callback(arg);
            } catch (e) {
                console.error("error running callback", callback, ":", e);
            }
        }
    }
    window.executeCallbacks = executeCallbacks;

    window.get_uiCurrentTab = function () {
        return gradioApp().querySelector("#tabs > .tab-nav > button.selected, #tabs button[role=tab][aria-selected=true]");
    };
    window.get_uiCurrentTabContent = function () {
        const panels = gradioApp().querySelectorAll("#tabs > .tabitem[id^=tab_], #tabs [role=tabpanel][id^=tab_]");
        for (const panel of panels) {
            if (panel.offsetParent !== null || panel.style.display === "block") return panel;
        }
        return null;
    };
    // A1111's tab switches (ui.js), which "Send to ..." buttons call: the top tab, then img2img's sub-tab.
    function clickTab(selector, index, label) {
        const buttons = [...gradioApp().querySelectorAll(selector)];
        const button = label ? buttons.find((b) => b.textContent.trim() === label) : buttons[index];
        if (button) button.click();
    }
    window.switch_to_txt2img = function () { clickTab("#tabs button[role=tab]", 0, "txt2img"); };
    window.switch_to_img2img_tab = function (no) {
        clickTab("#tabs button[role=tab]", 0, "img2img");
        setTimeout(() => clickTab("#mode_img2img button[role=tab]", no), 0);
    };
    window.switch_to_img2img = function () { window.switch_to_img2img_tab(0); };
    window.switch_to_sketch = function () { window.switch_to_img2img_tab(1); };
    window.switch_to_inpaint = function () { window.switch_to_img2img_tab(2); };
    window.switch_to_inpaint_sketch = function () { window.switch_to_img2img_tab(3); };
    window.switch_to_extras = function () {
        clickTab("#tabs button[role=tab]", 0, "Extras");
        setTimeout(() => clickTab("#mode_extras button[role=tab]", 0), 0);
    };
    window.uiElementIsVisible = function (el) {
        return !!el && el.offsetParent !== null;
    };

    let loaded = false;
    let currentTab = null;
    let afterTimer = null;
    function onMutation(mutations) {
        if (!loaded) {
            if (!gradioApp().querySelector("#txt2img_prompt")) return;
            loaded = true;
            executeCallbacks(callbacks.uiLoaded);
        }
        executeCallbacks(callbacks.uiUpdate, mutations);
        clearTimeout(afterTimer);
        afterTimer = setTimeout(() => executeCallbacks(callbacks.afterUiUpdate), 200);
        const tab = window.get_uiCurrentTab();
        if (tab && tab !== currentTab) {
            currentTab = tab;
            executeCallbacks(callbacks.uiTabChange);
        }
    }
    const observer = new MutationObserver(onMutation);
    observer.observe(document.body || document.documentElement, { childList: true, subtree: true });
    // Extensions' scripts register their callbacks right after this file runs; look once they have.
    setTimeout(() => onMutation([]), 0);
})();
