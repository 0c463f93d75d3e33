// Sumi page script: Ctrl+Enter (or Cmd+Enter) in a prompt box presses Generate, as in A1111.
window.sumiScript = true;
window.sumiPromptBoxes = "#txt2img_prompt, #txt2img_neg_prompt, #img2img_prompt, #img2img_neg_prompt";
document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    const box = e.target.closest && e.target.closest(window.sumiPromptBoxes);
    if (!box) return;
    e.preventDefault();
    document.querySelector(`#${box.id.split("_")[0]}_generate`)?.click();
});

// Extra networks cards (modules/sumi/frontends/gradio/extra_networks.py): a click toggles the card's text in the prompt
// box focused last (the negative one only for embeddings), as A1111's cardClicked; a checkpoint card
// asks the server to switch the model (hidden button, its `js` reads window.sumiCheckpointChoice).
(() => {
window.sumiLastPromptBox = "txt2img_prompt";
document.addEventListener("focusin", (e) => {
    const box = e.target.closest && e.target.closest(window.sumiPromptBoxes);
    if (box) window.sumiLastPromptBox = box.id;
});
const sumiExtranet = /<([^:^>]+:[^:]+):[\d.]+>(.*)/s;
const sumiExtranetG = /<([^:^>]+:[^:]+):[\d.]+>/g;
function sumiEscapeRegex(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }
function sumiToggleText(prompt, text, sep = " ") {
    const m = text.match(sumiExtranet);
    if (m) {
        const key = m[1], after = m[2];
        for (const found of prompt.matchAll(sumiExtranetG)) {
            if (found[1] !== key) continue;
            let start = found.index, end = found.index + found[0].length;
            if (after && prompt.substr(end, after.length) === after) end += after.length;
            if (sep && start >= sep.length && prompt.substr(start - sep.length, sep.length) === sep) start -= sep.length;
            return prompt.slice(0, start) + prompt.slice(end);
        }
    } else {
        const re = new RegExp("(?:" + sumiEscapeRegex(sep) + ")?" + sumiEscapeRegex(text), "g");
        const removed = prompt.replace(re, "");
        if (removed !== prompt) return removed;
    }
    return prompt.trim() ? prompt + sep + text : text;
}
window.sumiToggleText = sumiToggleText;
// A1111's opt extra_networks_add_text_separator: what goes before a card's text added to a prompt.
function sumiSeparator() {
    const sep = typeof opts !== "undefined" && opts ? opts.extra_networks_add_text_separator : undefined;
    return typeof sep === "string" ? sep : " ";
}
// Writing textarea.value does not tell Gradio (its Textbox state, and so Generate and the token counter's
// change event, follow "input" events only): the `input` event below is what makes both see the new text.
function sumiExtraNetworkClick(card) {
    const d = card.dataset;
    if (d.kind === "checkpoints") {
        window.sumiCheckpointChoice = d.checkpoint;
        document.querySelector(`#${d.tabname}_extra_checkpoint_switch`)?.click();
        return;
    }
    const tab = d.tabname || "txt2img";
    const boxId = d.negative && window.sumiLastPromptBox === `${tab}_neg_prompt` ? `${tab}_neg_prompt` : `${tab}_prompt`;
    const textarea = document.querySelector(`#${boxId} textarea`);
    if (!textarea || !d.prompt) return;
    textarea.value = sumiToggleText(textarea.value, d.prompt, sumiSeparator());
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
}
// The buttons on a card (copy path, metadata, edit: javascript/extraNetworks.js) act on their own; a click
// on any button of the card's row (extensions add theirs) never toggles the card's text.
function sumiCardButton(e, card, button) {
    const d = card.dataset;
    if (button.classList.contains("copy-path-button")) window.extraNetworksCopyCardPath?.(e);
    else if (button.classList.contains("metadata-button")) window.extraNetworksRequestMetadata?.(e, d.kind, d.name);
    else if (button.classList.contains("edit-button")) window.extraNetworksEditUserMetadata?.(e, d.tabname, d.kind, d.name);
}
document.addEventListener("click", (e) => {
    const card = e.target.closest && e.target.closest(".sumi-card");
    if (!card) return;
    const button = e.target.closest(".card-button");
    if (button) sumiCardButton(e, card, button);
    else if (!e.target.closest(".button-row")) sumiExtraNetworkClick(card);
});
// Folder buttons above the cards (card_folders.py): a click writes the folder into the tab's search box,
// a click on the chosen one clears it; the `input` event makes the server draw the cards again.
function sumiSearchCards(tabname, kind, text) {
    const search = document.querySelector(`#${tabname}_${kind}_extra_search`);
    const box = search && search.querySelector("textarea, input");
    if (!box) return;
    box.value = text;
    box.dispatchEvent(new Event("input", { bubbles: true }));
}
function sumiFolderClick(button) {
    const d = button.dataset;
    sumiSearchCards(d.tabname, d.kind, "selected" in d ? "" : d.path);
}
window.sumiFolderClick = sumiFolderClick;
document.addEventListener("click", (e) => {
    const button = e.target.closest && e.target.closest("button.sumi-dir");
    if (button) sumiFolderClick(button);
});
// A1111's "Tree" view (card_tree.py). The server draws the tree again with the cards on every search;
// what the user changed on the page (folders opened or closed with their chevron, the folders shown or
// hidden with the pane's button) is kept per tab here and put back on each new drawing.
const sumiTreeOpened = {};  // "<tabname>_<kind>" -> {folder: true (opened) | false (closed)}
const sumiFoldersShown = {};  // "<tabname>_<kind>" -> whether the user shows the folders
function sumiPaneKey(el) {
    return `${el.dataset.tabname}_${el.dataset.kind}`;
}
function sumiTreeSetOpen(row, open) {
    const list = row.nextElementSibling;
    if (!list) return;
    list.hidden = !open;
    if (open) row.dataset.expanded = "";
    else delete row.dataset.expanded;
}
function sumiTreeDirClick(e, row) {
    const key = sumiPaneKey(row);
    const open = "expanded" in row.dataset;
    if (e.target.closest(".tree-list-item-action--leading")) {  // the chevron: open or close only
        sumiTreeSetOpen(row, !open);
        (sumiTreeOpened[key] = sumiTreeOpened[key] || {})[row.dataset.folder] = !open;
        return;
    }
    const chosen = "selected" in row.dataset;
    (sumiTreeOpened[key] = sumiTreeOpened[key] || {})[row.dataset.folder] = true;
    // A1111: the chosen, open folder is let go (the search cleared); any other is opened and chosen
    sumiSearchCards(row.dataset.tabname, row.dataset.kind, chosen && open ? "" : row.dataset.path);
    if (!open) sumiTreeSetOpen(row, true);
}
function sumiRestorePane(pane) {
    const key = sumiPaneKey(pane);
    if (key in sumiFoldersShown) pane.classList.toggle("extra-network-dirs-hidden", !sumiFoldersShown[key]);
    const opened = sumiTreeOpened[key] || {};
    pane.querySelectorAll(".sumi-tree-dir").forEach((row) => {
        const folder = row.dataset.folder;
        const leadsToChoice = "selected" in row.dataset || row.nextElementSibling?.querySelector("[data-selected]");
        if (folder in opened && !leadsToChoice) sumiTreeSetOpen(row, opened[folder]);  // the choice stays in view
    });
    pane.dataset.restored = "";
}
function sumiRestorePanes() {
    document.querySelectorAll(".sumi-card-pane:not([data-restored])").forEach(sumiRestorePane);
}
if (typeof onUiUpdate === "function") onUiUpdate(sumiRestorePanes);  // A1111's page-change callbacks
else new MutationObserver(sumiRestorePanes).observe(document.documentElement, {childList: true, subtree: true});
document.addEventListener("click", (e) => {
    if (!e.target.closest) return;
    const row = e.target.closest(".sumi-tree-dir");
    if (row) return sumiTreeDirClick(e, row);
    const file = e.target.closest(".sumi-tree-file");
    if (file) return sumiExtraNetworkClick(file);
    const toggle = e.target.closest(".sumi-folders-toggle");
    if (!toggle) return;
    const pane = toggle.closest(".sumi-card-pane");
    const hidden = pane.classList.toggle("extra-network-dirs-hidden");
    sumiFoldersShown[sumiPaneKey(pane)] = !hidden;
});
// Cards, tree rows and files are focusable buttons: Enter or Space does what a click does.
document.addEventListener("keydown", (e) => {
    if ((e.key !== "Enter" && e.key !== " ") || e.ctrlKey || e.metaKey || e.altKey) return;
    const cl = e.target.classList;
    if (!cl || !(cl.contains("sumi-card") || cl.contains("sumi-tree-file") || cl.contains("sumi-tree-dir"))) return;
    e.preventDefault();
    if (cl.contains("sumi-tree-dir")) sumiTreeDirClick(e, e.target);
    else sumiExtraNetworkClick(e.target);
});
})();
