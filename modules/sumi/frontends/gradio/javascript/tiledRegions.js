// Tiled Diffusion's Region Prompt Control: drag on the picture of the canvas to place the region chosen in
// "Region to draw" (its x, y, w and h sliders are set, and it and region control are turned on), as the
// extension's bbox canvas. Drag a region that is drawn to move it, or its edge or corner to resize it; a
// click on a region chooses it in "Region to draw".
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
            rect.setAttribute("pointer-events", "none");
            svg.appendChild(rect);
        }
        return rect;
    }

    const EDGE = 8;  // how near an edge (in the picture's 480-wide units) a press resizes instead of moving
    const MIN_SIZE = 0.01;

    function regionBox(rect) {
        const read = (name) => parseFloat(rect.dataset[name]);
        return { x: read("x"), y: read("y"), w: read("w"), h: read("h") };
    }

    function edgesNear(svg, rect, event) {
        // which of the region's edges the pointer is on: {left, right, top, bottom}; none of them: a move
        const [fx, fy] = fractionAt(svg, event);
        const view = svg.viewBox.baseVal;
        const box = regionBox(rect);
        const near = (a, b, size) => Math.abs(a - b) * size <= EDGE;
        return {
            left: near(fx, box.x, view.width),
            right: near(fx, Math.min(1, box.x + box.w), view.width),
            top: near(fy, box.y, view.height),
            bottom: near(fy, Math.min(1, box.y + box.h), view.height),
        };
    }

    function cursorFor(edges) {
        const vertical = edges.top ? "n" : edges.bottom ? "s" : "";
        const horizontal = edges.left ? "w" : edges.right ? "e" : "";
        return vertical || horizontal ? vertical + horizontal + "-resize" : "move";
    }

    function movedBox(event) {
        // the region's box after the drag so far (a new box for a drawing), in canvas fractions
        const [x, y] = fractionAt(drag.svg, event);
        if (drag.mode === "draw") {
            return { x: Math.min(x, drag.x), y: Math.min(y, drag.y), w: Math.abs(x - drag.x), h: Math.abs(y - drag.y) };
        }
        const dx = x - drag.x, dy = y - drag.y;
        const box = drag.box;
        if (drag.mode === "move") {
            const w = Math.min(box.w, 1), h = Math.min(box.h, 1);
            return {
                x: Math.min(Math.max(box.x + dx, 0), 1 - w), y: Math.min(Math.max(box.y + dy, 0), 1 - h), w: w, h: h,
            };
        }
        let left = box.x, right = Math.min(1, box.x + box.w), top = box.y, bottom = Math.min(1, box.y + box.h);
        if (drag.edges.left) left = Math.min(Math.max(0, left + dx), right - MIN_SIZE);
        if (drag.edges.right) right = Math.max(Math.min(1, right + dx), left + MIN_SIZE);
        if (drag.edges.top) top = Math.min(Math.max(0, top + dy), bottom - MIN_SIZE);
        if (drag.edges.bottom) bottom = Math.max(Math.min(1, bottom + dy), top + MIN_SIZE);
        return { x: left, y: top, w: right - left, h: bottom - top };
    }

    function showDrag(event) {
        const box = movedBox(event);
        const view = drag.svg.viewBox.baseVal;
        const rect = outline(drag.svg);
        rect.setAttribute("x", box.x * view.width);
        rect.setAttribute("y", box.y * view.height);
        rect.setAttribute("width", box.w * view.width);
        rect.setAttribute("height", box.h * view.height);
        return box;
    }

    function chooseRegion(tab, index) {
        const labels = gradioApp().querySelectorAll("#MD-" + tab + "-draw-region label");
        for (const label of labels) {
            const input = label.querySelector("input");
            if (input && parseInt(input.value, 10) === index + 1 && !input.checked) input.click();
        }
    }

    document.addEventListener("pointerdown", function (event) {
        const svg = event.target.closest && event.target.closest(PREVIEW);
        if (!svg || event.button !== 0) return;
        const [x, y] = fractionAt(svg, event);
        const region = event.target.closest("rect.md-region");
        drag = { svg: svg, x: x, y: y, mode: "draw", moved: false };
        if (region) {
            const edges = edgesNear(svg, region, event);
            const resizing = edges.left || edges.right || edges.top || edges.bottom;
            Object.assign(drag, {
                mode: resizing ? "resize" : "move", edges: edges, box: regionBox(region),
                index: parseInt(region.dataset.region, 10),
            });
        }
        event.preventDefault();
    });

    document.addEventListener("pointermove", function (event) {
        if (drag) {
            drag.moved = true;
            showDrag(event);
            return;
        }
        const svg = event.target.closest && event.target.closest(PREVIEW);
        if (!svg) return;
        const region = event.target.closest("rect.md-region");
        svg.style.cursor = region ? cursorFor(edgesNear(svg, region, event)) : "crosshair";
    });

    document.addEventListener("pointerup", function (event) {
        if (!drag) return;
        const current = drag;
        const box = showDrag(event);
        const tab = tabOf(current.svg);
        drag = null;
        if (!tab) return;
        if (current.mode === "draw") {
            if (box.w < MIN_SIZE || box.h < MIN_SIZE) return;  // a click, not a box
            place(tab, chosenRegion(tab), box.x, box.y, box.w, box.h);
            return;
        }
        const [x, y] = fractionAt(current.svg, event);
        if (!current.moved || (Math.abs(x - current.x) < 0.002 && Math.abs(y - current.y) < 0.002)) {
            outline(current.svg).remove();
            chooseRegion(tab, current.index);  // a click on a region picks it for drawing
            return;
        }
        place(tab, current.index, box.x, box.y, box.w, box.h);
    });
})();
