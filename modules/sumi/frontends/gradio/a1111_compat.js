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
