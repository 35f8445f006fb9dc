// The share panel on the gallery page: copies the ready-to-paste message
// for the client. Until the platform emails it, staff paste it themselves.

const button = document.getElementById('share-copy');
const status = document.getElementById('share-copy-status');

async function copy(text, field) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return true;
  }
  // Plain http on a LAN name has no clipboard API: select it for Ctrl+C.
  field.focus();
  field.select();
  return false;
}

if (button) {
  const field = document.getElementById(button.dataset.copyTarget);
  button.addEventListener('click', async () => {
    try {
      const copied = await copy(field.value, field);
      status.textContent = copied ? 'Copied: paste it into your email or chat.' : 'Selected: press Ctrl+C (⌘C) to copy.';
    } catch {
      field.focus();
      field.select();
      status.textContent = 'Could not copy: the message is selected, press Ctrl+C (⌘C).';
    }
  });
}
