// A1111's javascript/aspectRatioOverlay.js: while width or height changes on the img2img tab, a frame
// (#imageARPreview) over the source image shows the part the new aspect ratio covers.

var currentWidth = null;
var currentHeight = null;
var arFrameTimeout = null;

var sumiImg2imgImageIds = ["img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch", "img_inpaint_base"];

function dimensionChange(e, is_width, is_height) {
    if (is_width) currentWidth = e.target.value * 1.0;
    if (is_height) currentHeight = e.target.value * 1.0;
    const tab = gradioApp().querySelector("#tab_img2img");
    if (!tab || !uiElementIsVisible(tab) || !currentWidth || !currentHeight) return;
    const id = sumiImg2imgImageIds[get_tab_index("mode_img2img")];
    const target = id ? gradioApp().querySelector(`#${id} img`) : null;
    if (!target || !target.naturalWidth) return;

    let frame = gradioApp().querySelector("#imageARPreview");
    if (!frame) {
        frame = document.createElement("div");
        frame.id = "imageARPreview";
        Object.assign(frame.style, { position: "absolute", border: "2px dashed red", pointerEvents: "none", zIndex: 1000 });
        document.body.appendChild(frame);
    }
    const box = target.getBoundingClientRect();
    const scale = Math.min(target.clientWidth / target.naturalWidth, target.clientHeight / target.naturalHeight);
    const shownW = target.naturalWidth * scale;
    const shownH = target.naturalHeight * scale;
    const fit = Math.min(shownW / currentWidth, shownH / currentHeight);
    const w = currentWidth * fit;
    const h = currentHeight * fit;
    const cx = box.left + window.scrollX + target.clientWidth / 2;
    const cy = box.top + window.scrollY + target.clientHeight / 2;
    Object.assign(frame.style, { left: cx - w / 2 + "px", top: cy - h / 2 + "px", width: w + "px", height: h + "px", display: "block" });
    clearTimeout(arFrameTimeout);
    arFrameTimeout = setTimeout(function () { frame.style.display = "none"; }, 2000);
}

onAfterUiUpdate(function () {
    for (const [id, isWidth] of [["img2img_width", true], ["img2img_height", false]]) {
        gradioApp().querySelectorAll(`#${id} input`).forEach(function (input) {
            if (input.classList.contains("scrollwatch")) return;
            input.classList.add("scrollwatch");
            input.addEventListener("input", (e) => dimensionChange(e, isWidth, !isWidth));
            if (isWidth) currentWidth = input.value * 1.0;
            else currentHeight = input.value * 1.0;
        });
    }
});
