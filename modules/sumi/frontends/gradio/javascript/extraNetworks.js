// A1111's extra-network helpers under its names (its extraNetworks.js and ui.js), used by the buttons on
// Sumi's cards (script.js) and by extensions' scripts that call them: copy a card's file path, show a
// file's metadata in a popup, open a card's editor; `popup(element)` / `closePopup()`.
(() => {
let popupBox = null;
let popupInner = null;

function closePopup() {
    if (popupBox) popupBox.style.display = "none";
}

function popup(contents) {
    if (!popupBox) {
        popupBox = document.createElement("div");
        popupBox.className = "global-popup";
        popupBox.addEventListener("click", (e) => { if (e.target === popupBox) closePopup(); });
        const close = document.createElement("div");
        close.className = "global-popup-close";
        close.title = "Close";
        close.addEventListener("click", closePopup);
        popupInner = document.createElement("div");
        popupInner.className = "global-popup-inner";
        popupBox.append(close, popupInner);
        document.body.appendChild(popupBox);
    }
    popupInner.replaceChildren(contents);
    popupBox.style.display = "flex";
}

document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && popupBox && popupBox.style.display !== "none") closePopup();
});

function copyBySelection(text) {  // plain http on another host has no clipboard API
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
}

function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).catch(() => copyBySelection(text));
    } else {
        copyBySelection(text);
    }
}

function extraNetworksCopyCardPath(event, path) {
    const text = path !== undefined ? path : event.target.getAttribute("data-clipboard-text");
    if (text) copyText(text);
    event.stopPropagation();
}

function extraNetworksShowMetadata(text) {
    const box = document.createElement("div");
    box.className = "extra-network-metadata sumi-metadata";
    let parsed = null;
    try { parsed = JSON.parse(text); } catch (e) { parsed = null; }
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        const table = document.createElement("table");
        for (const [key, value] of Object.entries(parsed)) {
            const row = table.insertRow();
            row.insertCell().textContent = key;
            row.insertCell().textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
        }
        box.appendChild(table);
    } else {
        const pre = document.createElement("pre");
        pre.textContent = String(text);
        box.appendChild(pre);
    }
    popup(box);
}

function extraNetworksRequestMetadata(event, extraPage, cardName) {
    const query = new URLSearchParams({page: extraPage, item: cardName});
    fetch(`./sd_extra_networks/metadata?${query}`)
        .then((r) => (r.ok ? r.json() : {}))
        .then((data) => extraNetworksShowMetadata(data && data.metadata ? data.metadata : "This file has no metadata."))
        .catch(() => extraNetworksShowMetadata("Could not read the metadata."));
    event.stopPropagation();
}

function extraNetworksEditUserMetadata(event, tabname, extraPage, cardName) {
    window.sumiEditCardName = cardName;
    document.querySelector(`#${tabname}_${extraPage}_extra_edit_open`)?.click();
    event.stopPropagation();
}

Object.assign(window, {
    popup, closePopup, extraNetworksCopyCardPath, extraNetworksShowMetadata, extraNetworksRequestMetadata,
    extraNetworksEditUserMetadata,
});
})();
