/**
 * Entry point and composition root of the browser client.
 *
 * Builds the API client and the shell, and owns the session state: which user is signed in,
 * and therefore which view is shown (sign-in, forced password change, account). Views never
 * switch views themselves; they report what happened through callbacks and this controller
 * decides. Session-wide API answers (`unauthenticated`, `password_change_required`) arrive
 * here through the API client's `onAuthError`, whichever view made the request.
 */

import { ApiClient, ApiError, type User } from './api';
import { portalReturn } from './portal-return';
import { accountView } from './ui/account-view';
import { HomeView } from './ui/home-view';
import { loginView, type LoginViewOptions } from './ui/login-view';
import { passwordView } from './ui/password-view';
import { keepDropsInPage } from './ui/picking';
import { Settings } from './ui/settings';
import { Shell } from './ui/shell';

class App {
  readonly #api: ApiClient;
  readonly #shell: Shell;
  /** `null` while signed out or while the session is being checked. */
  #user: User | null = null;
  readonly #settings = new Settings();
  /** The home view (and its transfer engine) lives as long as the session. */
  #home: HomeView | null = null;
  /**
   * The portal page this page was opened from (`?next=`): the portal sends a user with a
   * temporary password here to change it, and they go back once it is changed.
   */
  #returnTo: string | null = portalReturn(window.location.search);

  constructor(shell: Shell) {
    this.#shell = shell;
    this.#api = new ApiClient({ onAuthError: (error) => this.#onAuthError(error) });
  }

  async start(): Promise<void> {
    this.#shell.showMessage('Checking your session…');
    try {
      this.#enter(await this.#api.me());
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        this.#showLogin();
      } else {
        // Still offer the form: signing in is itself the retry once the server is back.
        this.#showLogin({ text: describe(error), tone: 'warning' });
      }
    }
  }

  #enter(user: User, status?: string): void {
    this.#user = user;
    this.#shell.setUser(user, (button) => void this.#signOut(button));
    if (!user.mustChangePassword && this.#returnTo !== null && user.permissions.includes('portal.access')) {
      // Back to the portal page that sent this user here for the password change.
      const to = this.#returnTo;
      this.#returnTo = null;
      window.location.assign(to);
      return;
    }
    if (user.mustChangePassword) {
      this.#stopHome();
      this.#showPasswordChange(true);
    } else if (status !== undefined) {
      this.#showAccount(status);
    } else {
      this.#showHome();
    }
  }

  #showHome(): void {
    const user = this.#user;
    if (user === null) return;
    if (this.#home === null) {
      this.#home = new HomeView({
        api: this.#api,
        user,
        settings: this.#settings,
        onSessionEnded: (code) => this.#onSessionEnded(code),
        onOpenAccount: () => this.#showAccount(),
      });
      this.#shell.show(this.#home);
      this.#home.start();
    } else {
      this.#shell.show(this.#home);
    }
  }

  #stopHome(): void {
    this.#home?.stop();
    this.#home = null;
  }

  #onSessionEnded(code: string): void {
    if (code === 'password_change_required' && this.#user !== null) {
      this.#enter({ ...this.#user, mustChangePassword: true });
      return;
    }
    this.#showLogin({ text: 'Your session has ended. Sign in again to continue.', tone: 'info' });
  }

  #showLogin(notice?: LoginViewOptions['notice']): void {
    this.#stopHome();
    this.#user = null;
    this.#shell.setUser(null);
    this.#shell.show(loginView({ api: this.#api, onSignedIn: (user) => this.#enter(user), notice }));
  }

  #showAccount(status?: string): void {
    const user = this.#user;
    if (user === null) return;
    this.#shell.show(
      accountView({ user, status, onChangePassword: () => this.#showPasswordChange(false), onBack: () => this.#showHome() }),
    );
  }

  #showPasswordChange(forced: boolean): void {
    this.#shell.show(
      passwordView({
        api: this.#api,
        forced,
        onChanged: () => void this.#afterPasswordChange(),
        onCancel: forced ? undefined : () => this.#showAccount(),
      }),
    );
  }

  async #afterPasswordChange(): Promise<void> {
    const confirmation = 'Your password has been changed.';
    try {
      this.#enter(await this.#api.me(), confirmation);
    } catch (error) {
      // `unauthenticated` was already handled by #onAuthError (back to sign-in).
      if (error instanceof ApiError && error.code === 'unauthenticated') return;
      // The change itself succeeded; only the refresh failed, so carry on with what we know.
      if (this.#user !== null) this.#enter({ ...this.#user, mustChangePassword: false }, confirmation);
    }
  }

  async #signOut(button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    this.#shell.clearAlert();
    try {
      const endSessionUrl = await this.#api.logout();
      if (endSessionUrl !== null) {
        // Signed in through the campus identity provider: end its session too (it sends the
        // browser back to this page afterwards).
        window.location.assign(endSessionUrl);
        return;
      }
    } catch (error) {
      // An already-ended session is signed out all the same; anything else means the server
      // may still hold it, which matters on a shared lab PC, so say so and stay signed in.
      if (!(error instanceof ApiError && error.status === 401)) {
        button.disabled = false;
        this.#shell.alert(`Signing out failed: ${describe(error)}`);
        return;
      }
    }
    this.#showLogin();
  }

  #onAuthError(error: ApiError): void {
    if (this.#user === null) return; // not signed in yet: the caller handles it
    if (error.code === 'unauthenticated') {
      this.#showLogin({ text: 'Your session has ended. Sign in again to continue.', tone: 'info' });
    } else if (error.code === 'password_change_required' && !this.#user.mustChangePassword) {
      this.#enter({ ...this.#user, mustChangePassword: true });
    }
  }
}

function describe(error: unknown): string {
  return error instanceof ApiError ? error.message : 'Something unexpected went wrong. Reload the page and try again.';
}

const host = document.getElementById('app');
if (host === null) throw new Error('LabBeam: index.html has no #app element to mount the client in');
// On every view, the sign-in form included: a file dropped beside a drop target stays here.
keepDropsInPage(window);
void new App(Shell.mount(host)).start();

