// A1111's javascript/hints.js: `titles` maps a label, button text, option value or class name to the
// tooltip shown for it. Extensions add their own entries (`titles["My label"] = "..."`); every element
// that appears on the page gets its tooltip, translated through `localization` when it has one.

var titles = {
    "Sampling steps": "How many denoising steps to run; more take longer, very few give poor images",
    "Sampling method": "The algorithm that removes the noise step by step",
    "Schedule type": "How the noise levels are spaced over the steps",
    "Batch count": "How many batches to make, one after the other",
    "Batch size": "How many images each batch makes at once",
    "CFG Scale": "Classifier-free guidance: how strongly the image follows the prompt",
    "Seed": "Starting point of the random noise; the same seed and settings give the same image",
    "\u{1f3b2}\ufe0f": "Use a random seed (-1)",
    "\u267b\ufe0f": "Reuse the seed of the image shown",
    "\u21c5": "Swap width and height",
    "Width": "Width of the image in pixels",
    "Height": "Height of the image in pixels",
    "Denoising strength": "How much the image may change: 0 keeps it, 1 ignores it",
    "Hires. fix": "Make the image at a small size, upscale it, then add detail at the large size",
    "Upscaler": "How the image is enlarged before the second pass",
    "Hires steps": "Steps of the second pass; 0 uses the same number as the first",
    "Upscale by": "Multiplier of the first-pass width and height",
    "Resize width to": "Width of the result; 0 computes it from the height",
    "Resize height to": "Height of the result; 0 computes it from the width",
    "Mask blur": "How many pixels to blur the mask edge before inpainting",
    "Masked content": "What fills the masked area before it is inpainted",
    "fill": "Fill it with the colours around it",
    "original": "Keep what was there",
    "latent noise": "Fill it with noise in latent space",
    "latent nothing": "Fill it with zeros in latent space",
    "Just resize": "Stretch the image to the target size",
    "Crop and resize": "Fill the target size with the image and crop what sticks out",
    "Resize and fill": "Fit the whole image inside the target size and fill the empty space",
    "Variation seed": "Seed of the noise mixed in for variations",
    "Variation strength": "How much of the variation noise to mix in; 0 none, 1 all of it",
    "Tiling": "Make an image that tiles seamlessly",
    "Interrupt": "Stop and keep the images finished so far",
    "Skip": "Stop the current image and go on with the next",
    "Generate": "Make the images (Ctrl+Enter)",
    "Styles": "Styles add text to the prompt and negative prompt when you generate",
    "Restore faces": "Improve faces with a face restoration model",
    "Clip skip": "Use the output of an earlier CLIP layer for the prompt",
};

function updateTooltip(element) {
    if (element.title) return;
    const lookup = function (key) {
        key = typeof key === "string" ? key.trim() : key;
        return key && titles[key] ? (window.localization || {})[titles[key]] || titles[key] : undefined;
    };
    let tooltip = lookup(element.textContent) || lookup(element.value) || lookup(element.dataset && element.dataset.value);
    if (!tooltip) {
        for (const c of element.classList) {
            tooltip = lookup(c);
            if (tooltip) break;
        }
    }
    if (tooltip) element.title = tooltip;
}

var tooltipCheckNodes = new Set();
var tooltipCheckTimer = null;

function processTooltipCheckNodes() {
    for (const node of tooltipCheckNodes) updateTooltip(node);
    tooltipCheckNodes.clear();
}

onUiUpdate(function (mutationRecords) {
    for (const record of mutationRecords || []) {
        for (const node of record.addedNodes) {
            if (node.nodeType !== Node.ELEMENT_NODE || node.classList.contains("hide")) continue;
            if (!node.title && ["SPAN", "BUTTON", "P", "INPUT", "LABEL"].includes(node.tagName)) tooltipCheckNodes.add(node);
            node.querySelectorAll("span, button, p, label").forEach((n) => tooltipCheckNodes.add(n));
        }
    }
    // at most one pass every 200 ms: a page that changes all the time (a running job's previews) would
    // otherwise postpone it for ever while the set of nodes grows
    if (tooltipCheckNodes.size && tooltipCheckTimer === null) {
        tooltipCheckTimer = setTimeout(function () {
            tooltipCheckTimer = null;
            processTooltipCheckNodes();
        }, 200);
    }
});
