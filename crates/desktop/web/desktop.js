// The web desktop (placeholder until the real page lands): shows that the
// page and its modules loaded.
import { REASONS } from "./switchover.js";

const status = document.getElementById("status");
if (status && REASONS) status.textContent = "connecting…";
