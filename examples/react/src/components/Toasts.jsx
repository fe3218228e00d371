export default function Toasts({ toasts, onOpen }) {
  return (
    <div className="toasts">
      {toasts.map((t) => (
        <button key={t.id} className="toast" data-testid="toast" onClick={() => onOpen(t)}>
          <div>
            <div className="toast-title">{t.title}</div>
            <div className="toast-body">{t.body}</div>
          </div>
        </button>
      ))}
    </div>
  );
}
