// The template's panel: load an image from a file or from a URL of this
// site, put its top-left corner on a board pixel (numbers, "here": the
// pixel in the middle of the screen, or dragging the handle at that corner
// while the panel is open), set its opacity, show only the pixels that
// differ from the board, or remove it. It also says whether a link can
// carry the template (one from a file cannot).

const $ = (id) => document.getElementById(id);

export class TemplatePanel {
  /**
   * @param {import("./template.js").Template} template
   * @param {() => {x: number, y: number}} middle  the board pixel in the middle of the screen
   */
  constructor(template, middle, view) {
    this.template = template;
    this.view = view;
    this.handle = $("template-handle");
    /** A drag of the handle: {pointerId, clientX, clientY, x, y} at its start. */
    this.drag = null;
    this.panel = $("template-panel");
    this.toggle = $("template-toggle");
    this.controls = $("template-controls");
    this.source = $("template-source");
    this.x = $("template-x");
    this.y = $("template-y");
    this.opacity = $("template-opacity");
    this.opacityText = $("template-opacity-text");
    this.diff = $("template-diff");
    this.url = $("template-url");
    this.toggle.addEventListener("click", () => this.show(this.panel.hidden));
    $("template-close").addEventListener("click", () => this.show(false));
    $("template-file").addEventListener("change", async (e) => {
      const input = e.target;
      await template.loadFile(input.files?.[0]);
      input.value = ""; // the same file again is a change too
    });
    const loadUrl = () => {
      if (this.url.value.trim()) template.loadUrl(this.url.value);
    };
    $("template-url-load").addEventListener("click", loadUrl);
    this.url.addEventListener("keydown", (e) => {
      if (e.key === "Enter") loadUrl();
    });
    // `change` fires once a number is typed out (Enter, leaving the field)
    // or stepped by its arrows.
    for (const input of [this.x, this.y]) {
      input.addEventListener("change", () => {
        const n = Number(input.value);
        if (input.value.trim() === "" || !Number.isFinite(n)) this.render();
        else template.set({ [input === this.x ? "x" : "y"]: Math.trunc(n) });
      });
    }
    this.opacity.addEventListener("input", () => template.set({ opacity: Number(this.opacity.value) }));
    this.diff.addEventListener("change", () => template.set({ onlyDiff: this.diff.checked }));
    $("template-here").addEventListener("click", () => {
      const { x, y } = middle();
      template.set({ x, y });
    });
    $("template-remove").addEventListener("click", () => template.clear());
    this.listenToHandle();
    this.render();
  }

  show(open) {
    this.panel.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    this.placeHandle();
  }

  /** Dragging the handle moves the template by whole board pixels. */
  listenToHandle() {
    const h = this.handle;
    h.addEventListener("pointerdown", (e) => {
      const s = this.template.state;
      if (!s) return;
      e.preventDefault();
      try { h.setPointerCapture(e.pointerId); } catch { /* not capturable */ }
      this.drag = { pointerId: e.pointerId, clientX: e.clientX, clientY: e.clientY, x: s.x, y: s.y };
    });
    h.addEventListener("pointermove", (e) => {
      const d = this.drag;
      if (!d || e.pointerId !== d.pointerId) return;
      const x = d.x + Math.round((e.clientX - d.clientX) / this.view.scale);
      const y = d.y + Math.round((e.clientY - d.clientY) / this.view.scale);
      if (x !== this.template.state.x || y !== this.template.state.y) this.template.set({ x, y });
    });
    const end = (e) => {
      if (this.drag?.pointerId === e.pointerId) this.drag = null;
    };
    h.addEventListener("pointerup", end);
    h.addEventListener("pointercancel", end);
  }

  /** Puts the handle on the template's top-left corner (called in the frame the view moves). */
  placeHandle() {
    const s = this.template.state;
    const v = this.view;
    this.handle.hidden = !s || this.panel.hidden || !v.width;
    if (this.handle.hidden) return;
    const r = v.rect();
    const left = r.left + Math.round(v.tx) + s.x * v.scale;
    const top = r.top + Math.round(v.ty) + s.y * v.scale;
    this.handle.style.transform = `translate(${Math.round(left - 14)}px, ${Math.round(top - 14)}px)`;
  }

  /** Shows the template's state (called whenever it changes). */
  render() {
    const s = this.template.state;
    this.placeHandle();
    this.toggle.classList.toggle("on", !!s);
    this.controls.hidden = !s;
    if (!s) {
      this.source.textContent = "No template: load an image to copy from.";
      return;
    }
    this.source.textContent = s.kind === "url"
      ? `From ${new URL(s.src).pathname}: Copy link shares it.`
      : `From the file ${s.name}: kept in this browser only; a link can't carry a file (use an image of this site for that).`;
    if (s.kind === "url") this.url.value = new URL(s.src).pathname + new URL(s.src).search;
    // Not while the player types in it.
    if (document.activeElement !== this.x) this.x.value = String(s.x);
    if (document.activeElement !== this.y) this.y.value = String(s.y);
    this.opacity.value = String(s.opacity);
    this.opacityText.textContent = `${Math.round(s.opacity * 100)}%`;
    this.diff.checked = s.onlyDiff;
  }
}
