/**
 * A yes/no question in the native modal `<dialog>`: the browser moves focus into it (to the `autofocus` button, the
 * safe choice), keeps Tab inside it, makes the page behind it inert and closes it on Escape. When it closes, focus
 * goes back to the control that opened it, or, when that control left the page meanwhile, to a fallback.
 */

export class ConfirmDialog {
  /** @param {HTMLDialogElement} dialog holding `[data-slot=title]`, `[data-slot=text]` and `[data-choice]` buttons */
  constructor(dialog) {
    this.dialog = dialog;
    this.title = dialog.querySelector('[data-slot="title"]');
    this.text = dialog.querySelector('[data-slot="text"]');
    this.confirmButton = dialog.querySelector('[data-choice="confirm"]');
    dialog.addEventListener("click", (event) => {
      const choice = event.target.closest("[data-choice]");
      if (choice) dialog.close(choice.dataset.choice);
    });
  }

  /**
   * Ask; resolves true when the user confirms, false when they keep things as they are (the other button or Escape).
   * @param {{title: string, text: string, confirmLabel: string, returnTo: HTMLElement,
   *          fallback: HTMLElement}} question
   */
  ask({ title, text, confirmLabel, returnTo, fallback }) {
    this.dismiss();
    this.title.textContent = title;
    this.text.textContent = text;
    this.confirmButton.textContent = confirmLabel;
    this.dialog.returnValue = "";
    return new Promise((resolve) => {
      this.dialog.addEventListener("close", () => {
        (returnTo.isConnected ? returnTo : fallback).focus();
        resolve(this.dialog.returnValue === "confirm");
      }, { once: true });
      this.dialog.showModal();
    });
  }

  /** Close an open question as if the user kept things (e.g. they were signed out meanwhile). */
  dismiss() {
    if (this.dialog.open) this.dialog.close("keep");
  }
}
