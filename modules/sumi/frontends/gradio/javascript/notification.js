// When a job's images arrive in a result gallery (its first picture changes): play notification.mp3 when
// the server has one and "Play notification sound after image generation" is on, at the set volume; and,
// while the page is in the background, show a browser notification once the user allowed them
// (Settings > Actions > "Request browser notifications"), as A1111's notification.js does.
(function () {
    let lastHead = null;
    let sound = null;

    function wireRequestButton() {
        const button = gradioApp().getElementById("request_notifications");
        if (!button || button.dataset.sumiNotifications) return;
        button.dataset.sumiNotifications = "1";
        button.addEventListener("click", () => {
            if ("Notification" in window) void Notification.requestPermission();
        }, true);
    }

    function playSound() {
        if (!window.sumiNotificationSound || !opts.notification_audio) return;
        sound = sound || new Audio(window.sumiNotificationSound);
        const volume = Number(opts.notification_volume ?? 100) / 100;
        sound.volume = Math.min(1, Math.max(0, Number.isFinite(volume) ? volume : 1));
        sound.play().catch(() => {});  // the browser may refuse sound before the user touched the page
    }

    function notify(head, previews) {
        if (document.hasFocus() || !("Notification" in window) || Notification.permission !== "granted") return;
        const shown = new Set(Array.from(previews).map((img) => img.src)).size;
        const count = shown > 1 ? shown - (opts.return_grid ? 1 : 0) : 1;
        const note = new Notification("Sumi", { body: `Generated ${count} image${count > 1 ? "s" : ""}`, icon: head, image: head });
        note.onclick = function () {
            parent.focus();
            this.close();
        };
    }

    onAfterUiUpdate(function () {
        wireRequestButton();
        const previews = gradioApp().querySelectorAll('div[id$="_results"] div[id$="_gallery"] img');
        const head = previews[0]?.src;
        if (!head || head === lastHead) return;
        lastHead = head;
        playSound();
        notify(head, previews);
    });
})();
