// filegate console conveniences; every page works without this script.
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  // Copy button next to a show-once secret.
  document.querySelectorAll('button[data-copy]').forEach((btn) => {
    btn.hidden = false;
    btn.addEventListener('click', async () => {
      const field = document.getElementById(btn.dataset.copy);
      try {
        await navigator.clipboard.writeText(field.value);
        btn.textContent = 'Copied';
      } catch (e) {
        field.select();
        btn.textContent = 'Press Ctrl+C';
      }
      setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
    });
  });
  // Upload form: progress bar and drag and drop.
  const form = document.querySelector('form[data-upload]');
  if (!form) return;
  const input = form.querySelector('input[type=file]');
  const zone = form.querySelector('.drop');
  const bar = document.createElement('progress');
  bar.max = 1; bar.value = 0; bar.hidden = true;
  const status = document.createElement('p');
  status.setAttribute('role', 'status');
  form.append(bar, status);
  const send = (files) => {
    const data = new FormData();
    data.append('csrf', form.querySelector('input[name=csrf]').value);
    for (const f of files) data.append('files', f, f.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded; }
    });
    xhr.addEventListener('load', () => {
      bar.value = bar.max;
      if (xhr.status < 400) { window.location.assign(xhr.responseURL || window.location.href); return; }
      const doc = new DOMParser().parseFromString(xhr.responseText, 'text/html');
      const msg = doc.querySelector('[role=alert]');
      status.textContent = msg ? msg.textContent : 'Upload failed (' + xhr.status + ')';
      status.className = 'error';
    });
    xhr.addEventListener('error', () => { status.textContent = 'Upload failed'; status.className = 'error'; });
    bar.hidden = false; bar.value = 0; status.textContent = 'Uploading…'; status.className = '';
    xhr.send(data);
  };
  form.addEventListener('submit', (e) => {
    if (!input.files.length) return;
    e.preventDefault();
    send(input.files);
  });
  if (zone) {
    ['dragenter', 'dragover'].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add('over'); }));
    ['dragleave', 'drop'].forEach((t) => zone.addEventListener(t, () => zone.classList.remove('over')));
    zone.addEventListener('drop', (e) => { e.preventDefault(); if (e.dataTransfer.files.length) send(e.dataTransfer.files); });
  }
});
