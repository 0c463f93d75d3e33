// A1111's javascript/progressbar.js contract: `requestProgress()` polls /internal/progress for a task id
// and draws a progress bar (and live previews over a gallery) until the task is done. Sumi's own
// Generate buttons stream their progress; extensions that run their own tasks (agent-scheduler) call this.

// A1111 keeps these two as empty functions (the gallery keeps its selection by itself); extensions' submit
// functions still call them (Deforum's submit_deforum: rememberGallerySelection('deforum_gallery')).
function rememberGallerySelection() {}

function getGallerySelectedIndex() {}

// POST `data` as JSON to `url` (relative to the page); `handler(json)` on success, else `errorHandler()`.
function request(url, data, handler, errorHandler) {
    fetch(url, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(data),
        credentials: "same-origin",
    })
        .then((response) => (response.ok ? response.json() : Promise.reject(new Error(String(response.status)))))
        .then((json) => handler(json))
        .catch((error) => errorHandler && errorHandler(error));
}

function pad2(x) {
    return x < 10 ? "0" + x : String(x);
}

function formatTime(secs) {
    if (secs > 3600) return pad2(Math.floor(secs / 3600)) + ":" + pad2(Math.floor(secs / 60) % 60) + ":" + pad2(Math.floor(secs) % 60);
    if (secs > 60) return pad2(Math.floor(secs / 60)) + ":" + pad2(Math.floor(secs) % 60);
    return Math.floor(secs) + "s";
}

var sumiOriginalTitle = null;

function setTitle(progress) {
    if (sumiOriginalTitle === null) sumiOriginalTitle = document.title;
    document.title = progress ? "[" + progress.trim() + "] " + sumiOriginalTitle : sumiOriginalTitle;
}

function sumiProgressText(res) {
    if (!res.active) return res.textinfo || "Waiting...";
    let text = Math.round((res.progress || 0) * 100) + "%";
    if (res.eta) text += " ETA: " + formatTime(res.eta);
    if (res.textinfo && res.textinfo !== "Waiting...") text += " " + res.textinfo;
    return text;
}

// The parameter names are A1111's: extensions read them (`progressbarContainer`) to tell A1111 from forks.
function requestProgress(id_task, progressbarContainer, gallery, atEnd, onProgress, inactivityTimeout = 40) {
    const started = Date.now();
    let lastActive = started;
    let done = false;
    const bar = document.createElement("div");
    bar.className = "progressDiv";
    bar.style.display = opts.show_progressbar === false ? "none" : "";
    const inner = document.createElement("div");
    inner.className = "progress";
    bar.appendChild(inner);
    progressbarContainer.parentNode.insertBefore(bar, progressbarContainer);

    let preview = null;
    if (gallery) {
        preview = document.createElement("div");
        preview.className = "livePreview";
        gallery.parentNode.insertBefore(preview, gallery);
    }

    function finish() {
        if (done) return;
        done = true;
        setTitle("");
        bar.remove();
        if (preview) preview.remove();
        if (atEnd) atEnd();
    }

    function poll() {
        request("./internal/progress", {id_task: id_task, live_preview: false}, function (res) {
            if (done) return;
            if (res.completed) return finish();
            if (res.active || res.queued) lastActive = Date.now();
            const text = sumiProgressText(res);
            inner.textContent = text;
            inner.style.width = res.active ? Math.round((res.progress || 0) * 100) + "%" : "";
            setTitle(res.active ? text : "");
            if (onProgress) onProgress(res);
            if (Date.now() - lastActive > inactivityTimeout * 1000) return finish();
            setTimeout(poll, Math.max(Number(opts.live_preview_refresh_period) || 300, 50));
        }, function () {
            if (!done) setTimeout(poll, 1000);
        });
    }

    let previewId = -1;
    function pollPreview() {
        request("./internal/progress", {id_task: id_task, id_live_preview: previewId, live_preview: true}, function (res) {
            if (done) return;
            if (res.live_preview) {
                const img = new Image();
                img.onload = function () {
                    preview.replaceChildren(img);
                };
                img.src = res.live_preview;
            }
            if (res.id_live_preview !== null && res.id_live_preview !== undefined && res.id_live_preview >= 0) previewId = res.id_live_preview;
            setTimeout(pollPreview, Math.max(Number(opts.live_preview_refresh_period) || 300, 50));
        }, function () {
            if (!done) setTimeout(pollPreview, 1000);
        });
    }

    poll();
    if (preview) pollPreview();
}
