// Sumi page script: Ctrl+Enter (or Cmd+Enter) in a prompt box presses Generate, as in A1111.
window.sumiScript = true;
document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    const tab = e.target.closest && e.target.closest("#txt2img_prompt, #txt2img_neg_prompt");
    if (!tab) return;
    e.preventDefault();
    document.querySelector("#txt2img_generate")?.click();
});
