// Tiled Diffusion's Region Prompt Control: drag on the picture of the canvas to place the region chosen in
// "Region to draw" (its x, y, w and h sliders are set, and it and region control are turned on), as the
// extension's bbox canvas.
(function () {
    const PREVIEW = "svg.md-region-preview";
    let drag = null;

    function fractionAt(svg, event) {
        // client pixels -> the picture's own coordinates (the SVG may be letterboxed), as canvas fractions
        const point = svg.createSVGPoint();
        point.x = event.clientX;
        point.y = event.clientY;
        const inner = point.matrixTransform(svg.getScreenCTM().inverse());
        const view = svg.viewBox.baseVal;
        const clamp = (v) => Math.min(1, Math.max(0, v));
        return [clamp(inner.x / view.width), clamp(inner.y / view.height)];
    }

    function tabOf(svg) {
        const holder = svg.closest("[id^='MD-'][id$='-region-preview']");
        return holder ? holder.id.split("-")[1] : null;  // "t2i" or "i2i"
    }

    function chosenRegion(tab) {
        const checked = gradioApp().querySelector("#MD-" + tab + "-draw-region input:checked");
        return checked ? parseInt(checked.value, 10) - 1 : 0;
    }

    function setNumber(id, value) {
        const input = gradioApp().querySelector("#" + id + " input[type=number]");
        if (!input) return;
        input.value = String(Math.round(value * 10000) / 10000);
        updateInput(input);
        input.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function place(tab, index, x, y, w, h) {
        // A closed region accordion has no inputs on the page yet: open it, then fill it once it is drawn.
        const prefix = "MD-" + tab + "-" + index;
        const ready = () => gradioApp().querySelector("#" + prefix + "-x input[type=number]");
        if (!ready()) {
            const toggle = gradioApp().querySelector("#MD-accordion-" + tab + "-" + index + " > button");
            if (toggle) toggle.click();
        }
        let tries = 0;
        (function fill() {
            if (!ready()) {
                if (tries++ < 100) setTimeout(fill, 20);
                return;
            }
            for (const id of ["#MD-" + tab + "-enable-bbox-control", "#MD-bbox-" + tab + "-" + index + "-enable"]) {
                const box = gradioApp().querySelector(id + " input");
                if (box && !box.checked) box.click();  // drawing a region turns region control and it on
            }
            setNumber(prefix + "-x", x);
            setNumber(prefix + "-y", y);
            setNumber(prefix + "-w", w);
            setNumber(prefix + "-h", h);
        })();
    }

    function outline(svg) {
        let rect = svg.querySelector("rect.md-drawing");
        if (!rect) {
            rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
            rect.setAttribute("class", "md-drawing");
            rect.setAttribute("fill", "none");
            rect.setAttribute("stroke", "currentColor");
            rect.setAttribute("stroke-dasharray", "4 3");
            svg.appendChild(rect);
        }
        return rect;
    }

    function showDrag(event) {
        const [x, y] = fractionAt(drag.svg, event);
        const view = drag.svg.viewBox.baseVal;
        const rect = outline(drag.svg);
        rect.setAttribute("x", Math.min(x, drag.x) * view.width);
        rect.setAttribute("y", Math.min(y, drag.y) * view.height);
        rect.setAttribute("width", Math.abs(x - drag.x) * view.width);
        rect.setAttribute("height", Math.abs(y - drag.y) * view.height);
        return [x, y];
    }

    document.addEventListener("pointerdown", function (event) {
        const svg = event.target.closest && event.target.closest(PREVIEW);
        if (!svg || event.button !== 0) return;
        const [x, y] = fractionAt(svg, event);
        drag = { svg: svg, x: x, y: y };
        event.preventDefault();
    });

    document.addEventListener("pointermove", function (event) {
        if (drag) showDrag(event);
    });

    document.addEventListener("pointerup", function (event) {
        if (!drag) return;
        const [x, y] = showDrag(event);
        const tab = tabOf(drag.svg);
        const left = Math.min(x, drag.x), top = Math.min(y, drag.y);
        const w = Math.abs(x - drag.x), h = Math.abs(y - drag.y);
        drag = null;
        if (!tab || w < 0.01 || h < 0.01) return;  // a click, not a box
        place(tab, chosenRegion(tab), left, top, w, h);
    });
})();
