// Keyboard editing in the prompt boxes, as in A1111:
//   Ctrl+Up / Ctrl+Down (Cmd on macOS) raise / lower the emphasis of the selection, or of the
//   `(...:w)` / `<...:w>` block or the word under the cursor: `word` -> `(word:1.1)` -> `(word:1.2)`;
//   back at weight 1 the parentheses go away again. `<lora:name:0.8>` steps by the extra-network
//   precision instead.
//   Alt+Left / Alt+Right move the comma-separated item(s) under the selection one place.
// Settings are A1111's (`keyedit_*`), read from a page-global `opts` when one exists, else defaults.
// The edit goes through the browser's editing commands, so Ctrl+Z undoes it and an `input` event
// tells Gradio (and the token counter) about the new value.
(() => {
    const DEFAULTS = {
        keyedit_precision_attention: 0.1,
        keyedit_precision_extra: 0.05,
        keyedit_delimiters: ".,\\/!?%^*;:{}=`~() ",
        keyedit_delimiters_whitespace: ["Tab", "Carriage Return", "Line Feed"],
        keyedit_move: true,
    };
    const WHITESPACE = { Tab: "\t", "Carriage Return": "\r", "Line Feed": "\n" };
    const PROMPT_TEXTAREA = ":is([id*='_toprow'] [id*='_prompt'], .prompt) textarea";

    function settings(overrides) {
        const page = typeof window.opts === "object" && window.opts ? window.opts : {};
        const merged = { ...DEFAULTS };
        for (const key of Object.keys(DEFAULTS)) {
            if (overrides && overrides[key] !== undefined) merged[key] = overrides[key];
            else if (page[key] !== undefined) merged[key] = page[key];
        }
        return merged;
    }

    function delimitersOf(s) {
        const spaces = Array.isArray(s.keyedit_delimiters_whitespace) ? s.keyedit_delimiters_whitespace : [];
        return String(s.keyedit_delimiters) + spaces.map((name) => WHITESPACE[name] || "").join("");
    }

    // The `open ... : weight close` block around a collapsed cursor: [start, end] of the text the weight
    // applies to (between the opener and the block's own last colon), or null.
    function blockAround(text, cursor, open, close) {
        let start = -1;
        for (let i = cursor - 1, depth = 0; i >= 0; i--) {
            if (text[i] === close) depth++;
            else if (text[i] === open && depth-- === 0) {
                start = i;
                break;
            }
        }
        if (start < 0) return null;
        let end = -1;
        for (let i = cursor, depth = 0; i < text.length; i++) {
            if (text[i] === open) depth++;
            else if (text[i] === close && depth-- === 0) {
                end = i;
                break;
            }
        }
        if (end < 0) return null;
        let colon = -1;
        for (let i = start + 1, depth = 0; i < end; i++) {
            if (text[i] === open) depth++;
            else if (text[i] === close) depth--;
            else if (text[i] === ":" && depth === 0) colon = i;
        }
        return colon < 0 ? null : [start + 1, colon];
    }

    // The word under a collapsed cursor, bounded by the delimiter characters.
    function wordAround(text, cursor, delimiters) {
        let start = cursor;
        let end = cursor;
        while (start > 0 && !delimiters.includes(text[start - 1])) start--;
        while (end < text.length && !delimiters.includes(text[end])) end++;
        return [start, end];
    }

    function formatWeight(weight) {
        const rounded = parseFloat(weight.toPrecision(12));
        return Number.isInteger(rounded) ? rounded.toFixed(1) : String(rounded);
    }

    // Pure edit: returns {text, start, end} (the new value and the range to keep selected), or null
    // when there is nothing to change.
    function editAttention(text, start, end, up, overrides) {
        const s = settings(overrides);
        if (start === end) {
            const range =
                blockAround(text, start, "<", ">") ||
                blockAround(text, start, "(", ")") ||
                wordAround(text, start, delimitersOf(s));
            [start, end] = range;
        }
        let close = ")";
        let step = Number(s.keyedit_precision_attention);
        if (start > 0 && text[start - 1] === "<") {
            close = ">";
            step = Number(s.keyedit_precision_extra);
        } else if (start === 0 || text[start - 1] !== "(") {
            while (end > start && text[end - 1] === " ") end--; // trailing spaces stay outside
            if (start === end) return null;
            text = `${text.slice(0, start)}(${text.slice(start, end)}:1.0)${text.slice(end)}`;
            start++;
            end++;
        }
        if (text[end] !== ":") return null;
        const closeAt = text.indexOf(close, end + 1);
        if (closeAt < 0) return null;
        const weight = Number(text.slice(end + 1, closeAt).trim());
        if (text.slice(end + 1, closeAt).trim() === "" || !Number.isFinite(weight)) return null;
        const next = formatWeight(weight + (up ? step : -step));
        if (close === ")" && Number(next) === 1) {
            text = text.slice(0, start - 1) + text.slice(start, end) + text.slice(closeAt + 1);
            return { text, start: start - 1, end: end - 1 };
        }
        return { text: text.slice(0, end + 1) + next + text.slice(closeAt), start, end };
    }

    // Pure edit for Alt+Left/Right: move the comma-separated items touched by the selection.
    function moveItems(text, start, end, left) {
        const items = text.split(",");
        const first = (text.slice(0, start).match(/,/g) || []).length;
        const last = (text.slice(0, end).match(/,/g) || []).length;
        const to = left ? first - 1 : first + 1;
        if (to < 0 || last + (left ? 0 : 1) >= items.length) return null;
        const moved = items.splice(first, last - first + 1);
        items.splice(to, 0, ...moved);
        const before = items.slice(0, to).join(",");
        return {
            text: items.join(","),
            start: before.length + (to > 0 ? 1 : 0),
            end: items.slice(0, to + moved.length).join(",").length,
        };
    }

    // Replace the textarea's value with `result.text` as a user edit (undoable, fires `input`).
    function apply(textarea, result) {
        const old = textarea.value;
        const next = result.text;
        let head = 0;
        while (head < old.length && head < next.length && old[head] === next[head]) head++;
        let tail = 0;
        while (
            tail < old.length - head &&
            tail < next.length - head &&
            old[old.length - 1 - tail] === next[next.length - 1 - tail]
        ) {
            tail++;
        }
        const middle = next.slice(head, next.length - tail);
        textarea.focus();
        textarea.setSelectionRange(head, old.length - tail);
        let done = false;
        try {
            done = middle !== "" && document.execCommand("insertText", false, middle);
        } catch (e) {
            done = false;
        }
        if (!done || textarea.value !== next) {
            textarea.value = next;
            textarea.dispatchEvent(new Event("input", { bubbles: true }));
        }
        textarea.setSelectionRange(result.start, result.end);
    }

    function onKeyDown(event) {
        const target = event.composedPath ? event.composedPath()[0] : event.target;
        if (!(target instanceof HTMLTextAreaElement) || !target.matches(PROMPT_TEXTAREA)) return;
        const vertical = event.key === "ArrowUp" || event.key === "ArrowDown";
        const horizontal = event.key === "ArrowLeft" || event.key === "ArrowRight";
        let result;
        if (vertical && (event.ctrlKey || event.metaKey) && !event.altKey) {
            event.preventDefault();
            const { selectionStart, selectionEnd } = target;
            result = editAttention(target.value, selectionStart, selectionEnd, event.key === "ArrowUp");
        } else if (horizontal && event.altKey && !event.ctrlKey && !event.metaKey && settings().keyedit_move) {
            event.preventDefault();
            const { selectionStart, selectionEnd } = target;
            result = moveItems(target.value, selectionStart, selectionEnd, event.key === "ArrowLeft");
        }
        if (result) apply(target, result);
    }

    window.sumiPromptEditing = { editAttention, moveItems };
    document.addEventListener("keydown", onKeyDown);
})();
