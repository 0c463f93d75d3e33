// A1111's javascript/localization.js: `window.localization` (set by the server before any script, from
// the "Localization" setting's localizations/<name>.json files) translates the page's texts, titles and
// placeholders as they appear. A text is translated when it matches a key exactly (trimmed).

var ignore_ids_for_localization = {
    setting_sd_hypernetwork: "OPTION",
    setting_sd_model_checkpoint: "OPTION",
    txt2img_styles: "OPTION",
    img2img_styles: "OPTION",
    setting_face_restoration_model: "OPTION",
    setting_realesrgan_enabled_models: "OPTION",
    extras_upscaler_1: "OPTION",
    extras_upscaler_2: "OPTION",
};

var re_num = /^[.\d]+$/;
var re_emoji = /[\p{Extended_Pictographic}\u{1F3FB}-\u{1F3FF}\u{1F9B0}-\u{1F9B3}]/u;

var original_lines = {};
var translated_lines = {};

function hasLocalization() {
    return !!window.localization && Object.keys(window.localization).length > 0;
}

function textNodesUnder(el) {
    const nodes = [];
    const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT, null);
    let n;
    while ((n = walk.nextNode())) nodes.push(n);
    return nodes;
}

function canBeTranslated(node, text) {
    if (!text || !node.parentElement) return false;
    const parentType = node.parentElement.nodeName;
    if (parentType === "SCRIPT" || parentType === "STYLE" || parentType === "TEXTAREA") return false;
    if (parentType === "OPTION" || parentType === "SPAN") {
        let pnode = node;
        for (let level = 0; level < 4; level++) {
            pnode = pnode.parentElement;
            if (!pnode) break;
            if (ignore_ids_for_localization[pnode.id] === parentType) return false;
        }
    }
    return !re_num.test(text) && !re_emoji.test(text);
}

function getTranslation(text) {
    if (!text) return undefined;
    if (translated_lines[text] === undefined) original_lines[text] = 1;
    const tl = window.localization[text];
    if (tl !== undefined) translated_lines[tl] = 1;
    return tl;
}

function processTextNode(node) {
    const text = node.textContent.trim();
    if (!canBeTranslated(node, text)) return;
    const tl = getTranslation(text);
    if (tl !== undefined) node.textContent = tl;
}

function processNode(node) {
    if (node.nodeType === Node.TEXT_NODE) {
        processTextNode(node);
        return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    for (const attr of ["title", "placeholder"]) {
        if (node[attr]) {
            const tl = getTranslation(node[attr]);
            if (tl !== undefined) node[attr] = tl;
        }
    }
    node.querySelectorAll("[placeholder], [title]").forEach(function (el) {
        for (const attr of ["title", "placeholder"]) {
            const value = el.getAttribute(attr);
            const tl = value ? getTranslation(value) : undefined;
            if (tl !== undefined) el.setAttribute(attr, tl);
        }
    });
    textNodesUnder(node).forEach(processTextNode);
}

function localizeWholePage() {
    processNode(gradioApp());
}

// The page's texts with their translations (or themselves): a start for a new localization file.
function dumpTranslations() {
    if (!hasLocalization()) localizeWholePage();
    const dumped = {};
    if (window.localization.rtl) dumped.rtl = true;
    for (const text in original_lines) {
        if (dumped[text] === undefined) dumped[text] = window.localization[text] || text;
    }
    return dumped;
}

function download_localization() {
    const text = JSON.stringify(dumpTranslations(), null, 4);
    const a = document.createElement("a");
    a.setAttribute("href", "data:text/plain;charset=utf-8," + encodeURIComponent(text));
    a.setAttribute("download", "localization.json");
    a.style.display = "none";
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
}

document.addEventListener("DOMContentLoaded", function () {
    if (!hasLocalization()) return;
    onUiUpdate(function (mutations) {
        (mutations || []).forEach(function (mutation) {
            mutation.addedNodes.forEach(processNode);
            if (mutation.type === "characterData") processNode(mutation.target);
        });
    });
    localizeWholePage();
    if (window.localization.rtl) document.documentElement.setAttribute("dir", "rtl");
});
